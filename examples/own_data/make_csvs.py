"""Write the two own-data CSV tasks of README's "Your own data: results" from ../shared's GLUE files.

* ``data/news_{train,dev}.csv`` (``text,label``): STS-B sentences labelled by the corpus they come
  from: ``headline`` (headlines), ``newswire`` (MSRpar), ``video-caption`` (MSRvid),
  ``image-caption`` (images); each sentence once, shuffled with seed 0.
* ``data/reviews_{train,dev}.csv`` (``review,rating``): 4,000 SST-2 training sentences (seed 1) and
  the 872 dev sentences, ratings ``0``/``1``.

Run from the repository root: ``python examples/own_data/make_csvs.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
GLUE = HERE.parents[2] / "shared" / "data" / "glue"
SOURCES = {"headlines": "headline", "MSRpar": "newswire", "MSRvid": "video-caption", "images": "image-caption"}


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str)


def main() -> None:
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    for split in ("train", "dev"):
        frame = _tsv(GLUE / "STS-B" / f"{split}.tsv")
        frame = frame[frame["filename"].isin(SOURCES)]
        rows = pd.concat([frame[["sentence1", "filename"]].rename(columns={"sentence1": "text"}),
                          frame[["sentence2", "filename"]].rename(columns={"sentence2": "text"})])
        rows["label"] = rows["filename"].map(SOURCES)
        rows = rows.drop_duplicates("text")[["text", "label"]].sample(frac=1, random_state=0)
        rows.to_csv(out / f"news_{split}.csv", index=False)
        print(f"news_{split}.csv: {len(rows):,} rows {rows['label'].value_counts().to_dict()}")
    train = _tsv(GLUE / "SST-2" / "train.tsv").sample(n=4000, random_state=1)
    train.rename(columns={"sentence": "review", "label": "rating"}).to_csv(out / "reviews_train.csv", index=False)
    dev = _tsv(GLUE / "SST-2" / "dev.tsv")
    dev.rename(columns={"sentence": "review", "label": "rating"}).to_csv(out / "reviews_dev.csv", index=False)
    print(f"reviews_train.csv: {len(train):,} rows; reviews_dev.csv: {len(dev):,} rows")


if __name__ == "__main__":
    main()
