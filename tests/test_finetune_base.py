"""The teacher stage's base: any encoder, including a classifier fine-tuned for another label count."""

import pytest

from conftest import TEACHER
from raykd.data.tasks import get_task
from raykd.teachers.finetune import _base_model


@pytest.mark.parametrize("task", ["stsb", "cola"])
def test_a_classifier_base_gets_the_tasks_head(task):
    """minilm-sst2 (a 2-label SST-2 classifier) as the base of STS-B (1 output) and CoLA (2 labels): the
    head has the task's outputs (a 2x384 head into 1 output used to raise a size mismatch inside the Ray
    task), the encoder is the base's."""
    from transformers import AutoModelForSequenceClassification

    spec = get_task(task)
    model = _base_model(str(TEACHER), spec)
    assert model.classifier.weight.shape[0] == spec.num_labels
    assert model.config.problem_type == ("regression" if spec.is_regression else "single_label_classification")
    base = AutoModelForSequenceClassification.from_pretrained(str(TEACHER))
    assert model.bert.embeddings.word_embeddings.weight.equal(base.bert.embeddings.word_embeddings.weight)
