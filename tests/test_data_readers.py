"""Readers: real glue_data files, GLUE layout fixtures, user CSV/TSV/JSONL files, offline Hub."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from raykd.data import custom_task, get_task, glue_split_path, read_file, read_glue  # noqa: E402
from raykd.data import read_hub  # noqa: E402
from raykd.errors import RaykdInputError  # noqa: E402

GLUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
needs_glue = pytest.mark.skipif(not GLUE_DIR.is_dir(), reason=f"no shared GLUE data at {GLUE_DIR}")


def _write(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _counts(frame):
    return frame["label"].value_counts().to_dict()


# --- real glue_data files (row and label counts from shared/data/README.md) ---------------------

REAL_SPLITS = [
    # task, split, rows, label counts (None: not checked here)
    ("SST-2", "train", 67349, {1: 37569, 0: 29780}),
    ("SST-2", "dev", 872, {1: 444, 0: 428}),
    ("CoLA", "train", 8551, {1: 6023, 0: 2528}),
    ("CoLA", "dev", 1043, None),
    ("MRPC", "train", 3668, {1: 2474, 0: 1194}),
    ("MRPC", "dev", 408, None),
    ("MRPC", "test", 1725, {-1: 1725}),
    ("RTE", "train", 2490, {0: 1249, 1: 1241}),
    ("RTE", "dev", 277, None),
    ("RTE", "test", 3000, {-1: 3000}),
    ("QNLI", "dev", 5463, {0: 2702, 1: 2761}),
    ("QNLI", "test", 5463, {-1: 5463}),
]


@needs_glue
@pytest.mark.parametrize("task, split, rows, counts", REAL_SPLITS)
def test_real_glue_classification(task, split, rows, counts):
    spec = get_task(task)
    frame = read_glue(GLUE_DIR, spec, split)
    expected_columns = ["text_a", "text_b", "label"] if spec.is_pair else ["text_a", "label"]
    assert list(frame.columns) == expected_columns
    assert len(frame) == rows
    assert frame["label"].dtype == np.int64
    assert frame["label"].between(-1, spec.num_labels - 1).all()
    if counts is not None:
        assert _counts(frame) == counts
    assert all(isinstance(text, str) for text in frame["text_a"])


@needs_glue
@pytest.mark.parametrize("split, rows", [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_real_stsb_scores(split, rows):
    frame = read_glue(GLUE_DIR, get_task("STS-B"), split)
    assert len(frame) == rows
    assert frame["label"].dtype == np.float32
    assert frame["label"].between(0.0, 5.0).all()  # test keeps its gold scores here
    if split == "train":
        first = ["A plane is taking off.", "An air plane is taking off.", 5.0]
        assert frame.loc[0].tolist() == first


@needs_glue
def test_real_first_rows_and_bom_header():
    sst2 = read_glue(GLUE_DIR, get_task("sst2"), "dev")
    assert sst2.loc[0].tolist() == ["it 's a charming and often affecting journey . ", 1]
    mrpc = read_glue(GLUE_DIR, get_task("mrpc"), "train")  # header starts with a BOM
    assert mrpc.loc[0, "label"] == 1
    assert mrpc.loc[0, "text_a"].startswith("Amrozi accused his brother")
    rte = read_glue(GLUE_DIR, get_task("rte"), "train")
    assert rte.loc[0].tolist() == [
        "No Weapons of Mass Destruction Found in Iraq Yet.",
        "Weapons of Mass Destruction Found in Iraq.",
        1,  # not_entailment
    ]


@needs_glue
def test_double_quotes_are_text_not_quoting():
    cola = read_glue(GLUE_DIR, get_task("cola"), "train")
    assert cola.loc[3056].tolist() == ['Susan whispered "Shut up".', 1]
    assert cola.loc[3057, "text_a"] == 'Susan whispered "Shut up" at them.'
    mrpc = read_glue(GLUE_DIR, get_task("mrpc"), "dev")  # a field that opens with '"'
    expected = '"The foodservice pie business does not fit our long-term growth strategy.'
    assert mrpc.loc[0, "text_b"] == expected


@needs_glue
def test_missing_split_names_layout():
    with pytest.raises(RaykdInputError, match=r"missing file .*QNLI/train\.tsv; put QNLI's train\.tsv there"):
        read_glue(GLUE_DIR, get_task("qnli"), "train")


@needs_glue
def test_split_path_aliases():
    sst2 = get_task("sst2")
    assert glue_split_path(GLUE_DIR, sst2, "validation") == GLUE_DIR / "SST-2" / "dev.tsv"
    with pytest.raises(RaykdInputError, match="valid splits: train, dev, test"):
        glue_split_path(GLUE_DIR, sst2, "dev_matched")


def test_missing_glue_dir(tmp_path):
    with pytest.raises(RaykdInputError, match="data.glue_dir: folder .* does not exist; point"):
        read_glue(tmp_path / "nowhere", get_task("sst2"), "train")


def test_custom_task_has_no_glue_files(tmp_path):
    with pytest.raises(RaykdInputError, match="not a GLUE task"):
        read_glue(tmp_path, custom_task("mine", ["text"], ["a", "b"]), "train")


# --- GLUE layout fixtures for tasks with no local data ------------------------------------------
# These are layout fixtures, not data: a few made-up rows in the real glue_data column layout of
# MNLI, QQP and WNLI (and of the SST-2/CoLA test files), whose real files are not in shared/data.

_MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)


def _mnli_row(i, premise, hypothesis, labels):
    return "\t".join([str(i), "1", f"{i}e", "fiction", "( p )", "( h )", "(ROOT p)", "(ROOT h)",
                      premise, hypothesis, *labels])


def test_mnli_layout_fixture(tmp_path):
    mnli = get_task("mnli")
    _write(tmp_path / "MNLI" / "train.tsv", [
        _MNLI_HEAD + "\tlabel1\tgold_label",
        _mnli_row(0, 'He said "yes".', "He agreed.", ["entailment", "entailment"]),
        _mnli_row(1, "It rained.", "It was dry.", ["contradiction", "contradiction"]),
        "2\t1\t2e\tfiction\t( p )",  # a short, broken row: skipped as GLUE's readers do
        _mnli_row(3, "A cat sat.", "An animal sat somewhere.", ["neutral", "neutral"]),
    ])
    dev_head = _MNLI_HEAD + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
    for split, label in (("dev_matched", "neutral"), ("dev_mismatched", "contradiction")):
        _write(tmp_path / "MNLI" / f"{split}.tsv", [
            dev_head, _mnli_row(0, "P.", "H.", [label] * 6),
        ])
    _write(tmp_path / "MNLI" / "test_matched.tsv", [_MNLI_HEAD, _mnli_row(0, "P.", "H.", [])])

    train = read_glue(tmp_path, mnli, "train")
    assert train["label"].tolist() == [0, 2, 1]
    assert train.loc[0, "text_a"] == 'He said "yes".' and train.loc[2, "text_b"].startswith("An")
    assert read_glue(tmp_path, mnli, "dev")["label"].tolist() == [1]  # dev means dev_matched
    assert read_glue(tmp_path, mnli, "dev_mismatched")["label"].tolist() == [2]
    assert read_glue(tmp_path, mnli, "test")["label"].tolist() == [-1]
    assert glue_split_path(tmp_path, mnli, "validation_matched").name == "dev_matched.tsv"


def test_qqp_layout_fixture(tmp_path):
    qqp = get_task("QQP")
    _write(tmp_path / "QQP" / "train.tsv", [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "0\t1\t2\tHow do I learn Python?\tWhat is the best way to learn Python?\t1",
        "1\t3\t4\tWhy is the sky blue?\tHow tall is Everest?\t0",
        "2\t5\t6\tWhat is a line",  # a question broken over two lines, as in the real QQP file
        "break?\t0",
        '3\t7\t8\tIs "AI" hype?\tIs AI overrated?\t1',
    ])
    _write(tmp_path / "QQP" / "test.tsv", [
        "id\tquestion1\tquestion2", "0\tWhat is up?\tWhat's up?",
    ])
    train = read_glue(tmp_path, qqp, "train")
    assert train["label"].tolist() == [1, 0, 1]
    assert train.loc[2, "text_a"] == 'Is "AI" hype?'
    test = read_glue(tmp_path, qqp, "test")
    assert test.loc[0].tolist() == ["What is up?", "What's up?", -1]


def test_wnli_layout_fixture(tmp_path):
    wnli = get_task("wnli")
    _write(tmp_path / "WNLI" / "train.tsv", [
        "index\tsentence1\tsentence2\tlabel",
        "0\tThe cup did not fit in the box because it was big.\tThe cup was big.\t1",
        "1\tThe cup did not fit in the box because it was big.\tThe box was big.\t0",
    ])
    _write(tmp_path / "WNLI" / "test.tsv", ["index\tsentence1\tsentence2", "0\tA.\tB."])
    train = read_glue(tmp_path, wnli, "train")
    assert train["label"].tolist() == [1, 0]
    assert wnli.label_names[1] == "entailment"
    assert read_glue(tmp_path, wnli, "test")["label"].tolist() == [-1]


def test_sst2_and_cola_test_layout_fixtures(tmp_path):
    _write(tmp_path / "SST-2" / "test.tsv", ["index\tsentence", "0\ta fine film .", "1\tdull ."])
    _write(tmp_path / "CoLA" / "test.tsv", ["index\tsentence", "0\tBill left."])
    sst2 = read_glue(tmp_path, get_task("sst2"), "test")
    assert sst2["text_a"].tolist() == ["a fine film .", "dull ."]
    assert sst2["label"].tolist() == [-1, -1]
    assert read_glue(tmp_path, get_task("cola"), "test").loc[0].tolist() == ["Bill left.", -1]


def test_malformed_rte_row_is_an_error(tmp_path):
    _write(tmp_path / "RTE" / "train.tsv", [
        "index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment", "1\tA broken row",
    ])
    with pytest.raises(RaykdInputError, match="row 2"):
        read_glue(tmp_path, get_task("rte"), "train")


# --- user files ---------------------------------------------------------------------------------


def test_csv_with_string_labels_and_quotes(tmp_path):
    path = _write(tmp_path / "train.csv", [
        "id,text,sentiment",
        '1,"a good, ""warm"" film",positive',
        "2,bad film,negative",
        "3, fine ,  positive ",  # labels match after stripping spaces; texts are kept as is
    ])
    frame = read_file(path, get_task("sst2"), ["text"], "sentiment")
    assert frame["text_a"].tolist() == ['a good, "warm" film', "bad film", " fine "]
    assert frame["label"].tolist() == [1, 0, 1]
    assert frame["label"].dtype == np.int64


def test_tsv_pair_task_with_raw_values(tmp_path):
    path = _write(tmp_path / "dev.tsv", [
        "premise\thypothesis\tgold",
        'He said "no\tHe refused.\tentailment',
        "A.\tB.\tnot_entailment",
    ])
    frame = read_file(path, get_task("rte"), ("premise", "hypothesis"), "gold")
    assert frame.loc[0].tolist() == ['He said "no', "He refused.", 0]
    assert frame["label"].tolist() == [0, 1]


def test_jsonl_integer_and_string_labels(tmp_path):
    rows = [{"s": "good", "y": 1}, {"s": "bad", "y": 0}, {"s": "ok", "y": "1"}]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    frame = read_file(path, get_task("sst2"), ["s"], "y")
    assert frame["label"].tolist() == [1, 0, 1]


def test_json_lines_and_json_array(tmp_path):
    rows = [{"a": "x", "b": "y", "score": 4.5}, {"a": "p", "b": "q", "score": 0}]
    lines = tmp_path / "train.json"
    lines.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    array = tmp_path / "dev.json"
    array.write_text(json.dumps(rows), encoding="utf-8")
    for path in (lines, array):
        frame = read_file(path, get_task("stsb"), ["a", "b"], "score")
        assert frame["label"].dtype == np.float32
        assert frame["label"].tolist() == [4.5, 0.0]


def test_custom_task_labels_and_unlabelled_file(tmp_path):
    spec = custom_task("topics", ["body"], ["sport", "politics", "science"])
    rows = ["body,topic", "goal!,sport", "vote,politics", "atoms,science"]
    path = _write(tmp_path / "t.csv", rows)
    assert read_file(path, spec, ["body"], "topic")["label"].tolist() == [0, 1, 2]
    ids = _write(tmp_path / "ids.csv", ["body,topic", "goal!,2"])  # ids are not label values
    with pytest.raises(RaykdInputError, match="unknown label '2'"):
        read_file(ids, spec, ["body"], "topic")
    unlabelled = read_file(path, spec, None, None)  # None: the task's own text field names
    assert unlabelled.columns.tolist() == ["text_a", "label"]
    assert unlabelled["label"].tolist() == [-1, -1, -1]
    regression = custom_task("rating", ["body"], None, metric="pearson")
    assert read_file(path, regression, ["body"], None)["label"].isna().all()


def test_error_missing_column(tmp_path):
    path = _write(tmp_path / "train.csv", ["sentence,label", "good,1"])
    message = (
        r"column 'text' not found in .*train\.csv \(columns: sentence, label\); "
        r"set data\.text_columns / data\.label_column"
    )
    with pytest.raises(RaykdInputError, match=message):
        read_file(path, get_task("sst2"), ["text"], "label")
    with pytest.raises(RaykdInputError, match="column 'y' not found"):
        read_file(path, get_task("sst2"), ["sentence"], "y")


def test_error_unknown_label_names_value_file_row_and_labels(tmp_path):
    path = _write(tmp_path / "train.csv", ["text,label", "good,1", "bad,neg"])
    with pytest.raises(RaykdInputError) as info:
        read_file(path, get_task("sst2"), ["text"], "label")
    message = str(info.value)
    for fragment in ("'neg'", "train.csv", "row 2", "0, 1, negative, positive"):
        assert fragment in message


def test_error_wrong_number_of_text_columns(tmp_path):
    path = _write(tmp_path / "train.csv", ["a,b,label", "x,y,1"])
    with pytest.raises(RaykdInputError, match="sentence-pair task and needs 2 text column"):
        read_file(path, get_task("mrpc"), ["a"], "label")
    with pytest.raises(RaykdInputError, match="single-sentence task and needs 1"):
        read_file(path, get_task("sst2"), ["a", "b"], "label")


def test_error_bad_score(tmp_path):
    path = _write(tmp_path / "train.csv", ["a,b,score", "x,y,4.2", "x,y,high"])
    with pytest.raises(RaykdInputError, match="score 'high' .* row 2 .* not a number"):
        read_file(path, get_task("stsb"), ["a", "b"], "score")


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("train.parquet", "x", "unsupported extension '.parquet'"),
        ("train.jsonl", '{"t": "a", "y": 1}\n{not json\n', "could not read"),
        ("train.csv", "", "could not read"),
        ("train.csv", "text,label\n", "no data rows"),
        ("train.jsonl", '{"t": "a", "y": 1}\n{"t": null, "y": 0}\n', "row 2 has no text"),
    ],
)
def test_error_unreadable_files(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RaykdInputError, match=fragment):
        read_file(path, get_task("sst2"), ["t" if "json" in name else "text"], "label"
                  if "csv" in name else "y")


def test_error_missing_file(tmp_path):
    with pytest.raises(RaykdInputError, match="does not exist"):
        read_file(tmp_path / "nope.csv", get_task("sst2"), ["text"], "label")


def test_errors_are_one_line(tmp_path):
    path = _write(tmp_path / "train.csv", ["text,label", "bad,neg"])
    with pytest.raises(RaykdInputError) as info:
        read_file(path, get_task("sst2"), ["text"], "label")
    assert "\n" not in str(info.value)


# --- the Hub, offline ---------------------------------------------------------------------------


def test_read_hub_offline_fails_cleanly():
    with pytest.raises(RaykdInputError) as info:
        read_hub("nyu-mll/glue", "sst2", "dev", get_task("sst2"), ["sentence"], "label")
    message = str(info.value)
    assert "could not" in message and "Hub" in message
    assert "data.glue_dir" in message and "data.train" in message
    assert "\n" not in message


def test_read_hub_maps_class_label_ids_and_split_names(monkeypatch):
    # A local in-memory dataset stands in for the Hub: this checks the mapping, not the network.
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "sentence1": datasets.Value("string"),
        "sentence2": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
    })
    calls = []

    def fake_load_dataset(dataset_id, config, split):
        calls.append((dataset_id, config, split))
        labels = [-1, -1] if split == "test" else [1, 0]
        rows = {"sentence1": ["A.", "B."], "sentence2": ["C.", "D."], "label": labels}
        return datasets.Dataset.from_dict(rows, features=features)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rte = get_task("rte")
    dev = read_hub("nyu-mll/glue", "rte", "dev", rte, None, "label")
    assert dev.loc[0].tolist() == ["A.", "C.", 1] and dev["label"].tolist() == [1, 0]
    assert read_hub("nyu-mll/glue", "rte", "test", rte, None, "label")["label"].tolist() == [-1, -1]
    with pytest.raises(RaykdInputError, match="unknown label 'not_entailment'"):  # RTE names
        read_hub("nyu-mll/glue", "mnli", "dev", get_task("mnli"), ("sentence1", "sentence2"),
                 "label")
    assert [call[2] for call in calls] == ["validation", "test", "validation_matched"]


# --- import weight ------------------------------------------------------------------------------


def test_import_raykd_data_stays_light():
    code = (
        "import sys, raykd.data\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'datasets', 'sklearn', 'transformers')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
