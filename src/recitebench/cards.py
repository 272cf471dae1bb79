"""Hugging Face cards written beside what recitebench makes: a dataset card in every frozen dataset folder (its
front matter points `datasets.load_dataset(FOLDER)` at poems.jsonl, so manifest.json is not read as data) and a
model card in every trained model folder. Both are built from the files' own records, so the same inputs give the
same bytes."""

from __future__ import annotations

import json

import yaml

DATASET_SPLIT = "train"  # a frozen dataset is what a model memorises: its one split


def dataset_card(manifest: dict, n: int) -> str:
    front = {"configs": [{"config_name": "default", "data_files": [{"split": DATASET_SPLIT, "path": "poems.jsonl"}]}],
             "tags": ["recitebench", "memorization"], "pretty_name": f"recitebench {manifest.get('preset')} set"}
    counts = manifest.get("counts") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", "",
             f"# recitebench frozen dataset ({manifest.get('preset')}, {n} rows)", "",
             "Written by `recitebench data build`; `manifest.json` records how the rows were chosen (source, filters "
             "with their counts, seed) and `poems_sha256` the hash of `poems.jsonl`, which recitebench checks before "
             "every use. Each row: `id`, `prompt` (the input the model recites from), `target` (what it recites).",
             "", f"- source: `{manifest.get('source')}`", f"- seed: {manifest.get('seed')}",
             f"- poems.jsonl sha256: `{manifest.get('poems_sha256')}`"]
    if manifest.get("part"):
        lines.append(f"- part `{manifest['part']}` of one draw split into {json.dumps(manifest.get('parts'))}")
    if counts:
        lines.append(f"- counts: {json.dumps(counts)}")
    return "\n".join(lines) + "\n"


def model_card(config: dict, summary: dict, dataset: dict) -> str:
    model = config.get("model", {})
    train = config.get("train", {})
    front = {"library_name": "transformers", "tags": ["recitebench", "memorization"],
             **({"base_model": model["model"]} if model.get("init") == "pretrained" and "/" in str(
                 model.get("model", "")) else {})}
    final = summary.get("final") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             "# A model trained by recitebench to memorise a frozen dataset", "",
             f"- model: `{model.get('model')}` ({model.get('init')}), template `{model.get('template')}`",
             f"- dataset: `{dataset.get('path')}` (poems sha256 `{dataset.get('poems_sha256')}`)",
             f"- training: {train.get('epochs')} epochs, learning rate {train.get('lr')}, seed {train.get('seed')}, "
             f"precision {train.get('precision')}",
             f"- final loss {final.get('loss')}" + (f", certified recall {final['recall']:.1%}" if "recall" in final
                                                    else ""), "",
             "It is a measurement artefact, not a general-purpose model: it was fitted to recite its dataset. "
             "`recitebench recite --run RUN` scores it; the run folder holds the config, curve and summary."]
    return "\n".join(lines) + "\n"
