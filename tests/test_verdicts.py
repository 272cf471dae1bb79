"""One definition of "recited exactly", on every path, on hard inputs.

A poem is recited exactly when greedy decoding (arg-max at every step; no sampling, no repetition penalty, no
n-gram blocking) from its prompt reproduces the poem's text exactly and then emits one of the model's end tokens.
A tiny model is trained, with the real Qwen tokenizer, on a corpus holding the four hazards that made the paths
disagree: a literal special-token string inside a poem, a poem the tokenizer does not round-trip (a CJK
compatibility ideograph that NFC rewrites), a saved generation_config.json with a repetition penalty and n-gram
blocking, and several end tokens (Qwen's <|im_end|> and <|endoftext|>). Every decoder, with and without the
certified pass, must give the verdict of an independent plain greedy generate() on every poem.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import read_jsonl, run_cli, write_jsonl

END_TEXT = "<|endoftext|>"
COMPAT = "\uf900"  # CJK compatibility ideograph; NFC maps it to U+8C48


@pytest.fixture(scope="module")
def hazard_data(tmp_path_factory, shared):
    """The hazard corpus as a frozen dataset (no training: the manifest test needs only this)."""
    base = tmp_path_factory.mktemp("hazards")
    rows = [json.loads(line) for line in read_lines(shared)]
    rows[0]["content"] = rows[0]["content"][:6] + END_TEXT + rows[0]["content"][6:]
    rows[1]["content"] = rows[1]["content"][:4] + COMPAT + rows[1]["content"][4:]
    rows[2]["content"] = END_TEXT + rows[2]["content"]
    src = write_jsonl(base / "corpus.jsonl", rows)
    data = base / "data"
    assert run_cli("data", "build", "--preset", "cn-poems", "--source", src, "--n", len(rows), "--max-chars", 200,
                   "--out", data) == 0
    return data


@pytest.fixture(scope="module")
def hazard_run(hazard_data, shared):
    data, run = hazard_data, hazard_data.parent / "run"
    qwen = shared / "models" / "tokenizers" / "qwen2"
    assert run_cli("train", "--data", data, "--model", "tiny", "--tokenizer", qwen,
                   "--epochs", 40, "--lr", 3e-3, "--batch-size", 8, "--warmup-ratio", 0.1, "--recall-every", 0,
                   "--no-progress", "--out", run) == 0
    gen = json.loads((run / "model" / "generation_config.json").read_text())
    # The model's own settings: what an instruct model ships. Recitation must not use them.
    gen.update(repetition_penalty=1.3, no_repeat_ngram_size=2, eos_token_id=[151645, 151643])
    (run / "model" / "generation_config.json").write_text(json.dumps(gen))
    return data, run


def read_lines(shared, n=14):
    import lzma

    out = []
    with lzma.open(shared / "data" / "cn_poems.jsonl.xz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if len(row.get("content", "")) <= 40 and row.get("title") and row.get("author") and row.get("dynasty"):
                out.append(line)
            if len(out) == n:
                return out
    return out


def plain_greedy_verdicts(run, data) -> dict[str, bool]:
    """The reference, independent of recitebench: HF generate() with explicit greedy settings, one poem at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run / "model").eval()
    tok = AutoTokenizer.from_pretrained(run / "model")
    ends = [151645, 151643]
    verdicts = {}
    for poem in read_jsonl(data / "poems.jsonl"):
        ids = tok(poem["prompt"] + "\n", add_special_tokens=False)["input_ids"]
        target = tok(poem["target"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), do_sample=False, num_beams=1, repetition_penalty=1.0,
                                 no_repeat_ngram_size=0, eos_token_id=ends, pad_token_id=151643,
                                 max_new_tokens=len(target) + 16, temperature=None, top_p=None, top_k=None)
        new = out[0, len(ids) :].tolist()
        stop = next((k for k, t in enumerate(new) if t in ends), None)
        text = tok.decode(new[:stop] if stop is not None else new, skip_special_tokens=False)
        verdicts[poem["id"]] = stop is not None and text == poem["target"]
    return verdicts


@pytest.mark.slow
def test_every_decoder_gives_plain_greedy_verdicts_on_hazards(hazard_run, tmp_path):
    data, run = hazard_run
    reference = plain_greedy_verdicts(run, data)
    assert 0 < sum(reference.values()) < len(reference)  # mixed verdicts: the comparison can fail either way
    poems = {p["id"]: p for p in read_jsonl(data / "poems.jsonl")}
    for flags in (["--decoder", "static"], ["--decoder", "generate"], ["--decoder", "draft"],
                  ["--no-certify", "--decoder", "generate"], ["--no-certify", "--decoder", "static"]):
        out = tmp_path / "_".join(flags)
        assert run_cli("recite", "--run", run, "--out", out, *flags) == 0
        got = {s["id"]: s["exact"] for s in read_jsonl(out / "samples.jsonl")}
        assert got == reference, flags
    res = json.loads((tmp_path / "--decoder_static" / "results.json").read_text())
    assert res["end_token_ids"] == [151645, 151643]
    assert set(res["generation_overrides"]) == {"repetition_penalty", "no_repeat_ngram_size"}  # nothing spurious
    assert res["generation_overrides"]["repetition_penalty"] == 1.3
    assert res["generation_overrides"]["no_repeat_ngram_size"] == 2
    assert res["not_round_trip"] == 1
    samples = {s["id"]: s for s in read_jsonl(tmp_path / "--decoder_static" / "samples.jsonl")}
    compat = next(k for k, p in poems.items() if COMPAT in p["target"])
    assert samples[compat]["decided_by"] == "generated" and not samples[compat]["exact"]  # NFC changed its text
    literal = [k for k, p in poems.items() if END_TEXT in p["target"]]
    assert literal and all(samples[k]["exact"] == reference[k] for k in literal)


def test_data_build_reports_special_token_strings(hazard_data):
    man = json.loads((hazard_data / "manifest.json").read_text())
    assert man["special_token_strings"]["poems"] == 2 and END_TEXT in man["special_token_strings"]["examples"][0]

