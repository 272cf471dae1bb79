"""One command, `recitebench`, with subcommands mapped to plain functions.

recitebench data build --preset cn-poems --source shared:cn_poems --n 2000 --out data/cn256
recitebench train --data data/cn256 --model qwen2-0.5b-instruct --out runs/qwen2-cn
recitebench recite --run runs/qwen2-cn
recitebench extract --run runs/qwen2-cn --prefix-tokens 0 8 32
recitebench run configs/demo.yaml
recitebench report runs/demo
recitebench ls runs/demo
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap

from . import __version__, commands
from .config import add_arguments
from .data.config import DataConfig
from .errors import RecitebenchError
from .experiment.config import CAPACITY_PROTOCOL, CapacityConfig, ExecutorConfig
from .models.config import ModelConfig
from .recall.config import NORMALIZATIONS, ExtractConfig, LensConfig, ReciteConfig
from .train.config import TrainConfig

EXAMPLES = {
    "data build": """\
examples:
  # the paper's Table 1 Chinese set: 2,000 poems, prompt + poem <= 256 characters
  recitebench data build --preset cn-poems --source ../shared/data/cn_poems.jsonl.xz --n 2000 --max-chars 256 \
      --seed 0 --out data/cn256
  # Table 2: 256-512 characters
  recitebench data build --preset cn-poems --source shared:cn_poems --min-chars 256 --max-chars 512 --out data/cn512
  # a Hugging Face dataset with other column names
  recitebench data build --preset en-poems --source hf:jnb666/poems --columns author=poet,content=text --out data/en
""",
    "train": """\
examples:
  # the paper's setting on a GPU: full fine-tune, 100 epochs, memory curve every 10 epochs
  recitebench train --data data/cn256 --model Qwen/Qwen2-0.5B-Instruct --out runs/qwen2-cn --epochs 100 --lr 2e-5
  # from scratch at true size with the real Qwen tokenizer from ../shared/models
  recitebench train --data data/cn256 --model qwen2-0.5b-instruct --init scratch --out runs/qwen2-scratch --lr 3e-4
  # CPU smoke run: a 2-layer model learns 20 poems
  recitebench train --data data/small --model tiny --epochs 60 --lr 3e-3 --out runs/tiny
  # continue a run that was interrupted
  recitebench train --out runs/qwen2-cn --resume
""",
    "recite": """\
examples:
  recitebench recite --run runs/qwen2-cn                     # scores the run's final model on its dataset
  # no training: probe the memory a model already has
  recitebench recite --model Qwen/Qwen2-0.5B-Instruct --data data/cn256 --out probes/qwen2
  recitebench recite --run runs/tiny --verify 50             # also generate 50 certified poems to check agreement
""",
    "extract": """\
examples:
  recitebench extract --run runs/qwen2-cn                        # k = m = 32 (Pythia) on the run's own poems
  recitebench extract --model smollm2-135m-instruct-gguf --data data/en256 --prefix-tokens 0 8 16 32 --out probes/smol
""",
    "run": """\
examples:
  recitebench run                       # the embedded demo (configs/demo.yaml): memorise, recite, report on the CPU
  recitebench run configs/paper_table1.yaml --dry-run   # list the runs a spec expands to
  recitebench run configs/paper_table1.yaml             # run what is not done yet, then write the report
""",
    "capacity": """\
examples:
  recitebench capacity                                  # the embedded CPU demo (configs/capacity_demo.yaml)
  recitebench capacity configs/capacity_ladder_random.yaml --dry-run
  recitebench capacity configs/capacity_ladder_random.yaml --seeds 0 1 2 --executor pool --jobs 2
""",
    "report": "examples:\n  recitebench report runs/demo        # writes runs/demo/report.html and report.md\n",
    "ls": "examples:\n  recitebench ls runs/demo\n  recitebench ls --models             # the model presets\n",
    "compare": "examples:\n  recitebench compare runs/demo/cn__tiny runs/demo/en__tiny\n",
    "study": "examples:\n  recitebench study configs/verdicts.yaml   # the paper's claims from docs/study_results\n",
}


# (name, one-line help, description, config classes whose fields become flags, fields to leave out)
CONFIGURED = [
    ("train", "memorise a frozen dataset by fine-tuning (or training from scratch)",
     "Train a causal LM on a frozen dataset (loss on the poem and its end token only), logging the memory curve to "
     "OUT/metrics.jsonl, checkpointing, and saving OUT/model.", (ModelConfig, TrainConfig), ()),
    ("recite", "score exact and graded recall of a model on a dataset",
     "Recite every poem from its input alone: the certified teacher-forced pass decides most poems in one forward "
     "pass, greedy decoding decides the rest. Writes results.json and samples.jsonl.", (ReciteConfig, ModelConfig),
     ("vocab_size", "init_seed")),
    ("extract", "the extraction probe: greedy continuation after each poem's prompt and first k tokens",
     "Pythia's memorisation score for any model: after a poem's prompt and its first k tokens (a sweep over k), "
     "decode m tokens greedily and score them against the poem's next m (exact, and the share of matching tokens). "
     "Writes extraction.json (per k) and extraction.jsonl (per poem and k).", (ExtractConfig, ModelConfig),
     ("vocab_size", "init_seed")),
    ("lens", "the layer-wise probe: at which depth each poem becomes decodable (logit lens)",
     "Per layer, the hidden state through the model's own final norm and head: bits per poem of its tokens "
     "(teacher-forced after the prompt) and the share that are the lens's top-1, for the members and a held-out set. "
     "Writes lens.json.", (LensConfig, ModelConfig), ("vocab_size", "init_seed")),
]


# argparse takes "-1" and "-0.5" for numbers but "-1e-3" for an option ("expected one argument"): a number in any
# notation is a value.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$")


def _parser_for(sub, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=description, epilog=EXAMPLES.get(name, ""),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p._negative_number_matcher = NEGATIVE_NUMBER
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recitebench", description=textwrap.dedent(__doc__ or ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"recitebench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    data = sub.add_parser("data", help="build frozen poem datasets",
                          description="Frozen datasets: the poems a model memorises.")
    db = _parser_for(data.add_subparsers(dest="action", metavar="ACTION"), "build",
                     "sample a frozen dataset from a corpus",
                     "Read a corpus, validate every row, drop ambiguous inputs, apply the length rule, sample N poems "
                     "with SEED, and write OUT/poems.jsonl + OUT/manifest.json (atomically; byte-identical on re-run).")
    db.epilog = EXAMPLES["data build"]
    db.add_argument("--config", help="YAML file with DataConfig fields (flags override it)")
    db.add_argument("--out", required=True, help="output folder for poems.jsonl and manifest.json")
    db.add_argument("--overwrite", action="store_true", help="replace a dataset built with other settings in --out")
    add_arguments(db, DataConfig)
    for name, help_text, description, classes, skip in CONFIGURED:
        sp = _parser_for(sub, name, help_text, description)
        sp.add_argument("--config", help=f"YAML file with {name} fields (flags override it)")
        for cls in classes:
            add_arguments(sp, cls, skip=skip if cls is ModelConfig else ())
    _add_listing_commands(sub)
    return p


def _add_listing_commands(sub) -> None:
    rn = _parser_for(sub, "run", "run an experiment spec (grid of data x models), then write the report",
                     "Expand a YAML experiment spec into runs, do what is not done yet (finished runs are skipped, "
                     "interrupted ones resume), and write the report.")
    rn.add_argument("spec", nargs="?", default=None, help="experiment YAML (default: the embedded configs/demo.yaml)")
    rn.add_argument("--dry-run", action="store_true", help="validate the spec and list its runs without running them")
    rn.add_argument("--runs-dir", default=None, help="override the spec's runs_dir")
    rn.add_argument("--only", default=None, help="run only runs whose name contains this text")
    _add_overrides(rn, "--set train.lr=1e-3 --set models.tiny.train.epochs=5")
    add_arguments(rn, ExecutorConfig)
    cap = _parser_for(sub, "capacity", "measure memory capacity: nested subsets of growing size until recall "
                      "saturates", CAPACITY_PROTOCOL)
    cap.add_argument("spec", nargs="?", default=None,
                     help="capacity spec YAML (default: the embedded configs/capacity_demo.yaml)")
    cap.add_argument("--out", default=None, help="output folder (default: the spec's runs_dir)")
    cap.add_argument("--dry-run", action="store_true", help="write and validate the pilot and sweep grids, run nothing")
    _add_overrides(cap, "--set capacity.seeds=[0,1]")
    add_arguments(cap, CapacityConfig)
    add_arguments(cap, ExecutorConfig)
    rp = _parser_for(sub, "report", "write the HTML + Markdown report of a runs folder",
                     "Render report.html (self-contained) and report.md from the finished runs in a folder.")
    rp.add_argument("runs_dir", help="folder holding runs (as written by `recitebench run`)")
    rp.add_argument("--title", default=None, help="report title")
    ls = _parser_for(sub, "ls", "list runs with their key numbers (or the model presets)",
                     "List the finished runs of RUNS_DIR with their key numbers (read from the run folders).")
    ls.add_argument("runs_dir", nargs="?", default="runs", help="folder holding runs [default: runs]")
    ls.add_argument("--models", action="store_true", help="list the model presets instead")
    ls.add_argument("--presets", action="store_true", help="list the dataset presets instead")
    st = _parser_for(sub, "study", "the verdict table of a study's claims, computed from its run folders",
                     "Read a study spec (claims, each comparing two arms of seeds and learning-rate grids), compute "
                     "each arm's recall over seeds, each difference with seed variance (family-wise intervals, Holm "
                     "over the claims), the design checks and the verdict, and print the Markdown table.")
    st.add_argument("spec", nargs="?", default=None, help="study YAML (default: configs/verdicts.yaml)")
    st.add_argument("--out", default=None, help="also write study.json and study.md into this folder")
    rt = _parser_for(sub, "retention", "recite a set with every snapshot of a run: its memory while the run learned",
                     "Recite DATA (the whole recitation: exact, graded outcomes, bits) with every snapshot of RUN "
                     "(train --snapshot-every K) and write RUN/retention/NAME/retention.json, the curve over epochs "
                     "(train on A, continue on B from A's model with snapshots, then `retention --run B --data A`).")
    rt.add_argument("--run", required=True, help="the run whose snapshots recite (the continuation on B)")
    rt.add_argument("--data", required=True, help="the frozen dataset whose retention is measured (A)")
    rt.add_argument("--reference", default="none",
                    help="what memorised bits are measured against (as recite --reference; a run's own base is the "
                         "model it continued from, so name one here) [default: none]")
    rt.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [default: auto]")
    cp = _parser_for(sub, "compare", "print a side-by-side table of runs", "Compare finished runs side by side.")
    cp.add_argument("runs", nargs="+", help="run folders")
    ex = sub.add_parser("export", help="export a dataset as a task for another evaluation tool",
                        description="Export a frozen dataset for other tools.")
    lm = _parser_for(ex.add_subparsers(dest="action", metavar="FORMAT"), "lm-eval",
                     "an lm-evaluation-harness task with recitebench's exact-recall verdict",
                     "Write an lm-evaluation-harness task (YAML + poems.jsonl + utils.py) that scores exact recall "
                     "with greedy generate_until, stop on the end token and recitebench's normalisation. Use it with "
                     "any lm-eval backend: lm_eval --model vllm --model_args pretrained=MODEL --include_path OUT "
                     "--tasks recitebench_NAME")
    lm.add_argument("data", help="frozen dataset folder (from `recitebench data build`)")
    lm.add_argument("--out", required=True, help="folder for the task files")
    _add_task_format(lm, "the prompt format of the runs it evaluates: plain feeds prompt + newline; chat the bare "
                         "prompt, for lm_eval --apply_chat_template")
    lm.add_argument("--overwrite", action="store_true", help="replace the task files in a --out that holds some")
    lm.add_argument("--extraction", type=int, nargs=2, default=None, metavar=("K", "M"),
                    help="export the extraction probe instead (as `recitebench extract`): the next M tokens after the "
                         "prompt and the first K poem tokens; needs --tokenizer")
    lm.add_argument("--tokenizer", default=None, help="with --extraction: the evaluated model's tokenizer (a folder "
                                                      "or hub id), which cuts the poems into tokens")
    lm.add_argument("--max-gen-toks", type=int, default=None,
                    help="generation budget per poem (default: 4 tokens per character of the longest poem + 16); "
                         "set it below a small model's context length")

    im = sub.add_parser("import", help="import another evaluation tool's outputs as a recitation",
                        description="Grade another tool's outputs by recitebench's rules.")
    li = _parser_for(im.add_subparsers(dest="action", metavar="FORMAT"), "lm-eval",
                     "grade an lm-eval --log_samples file of an exported task as a recitation folder",
                     "Match each document of an lm-evaluation-harness samples file (from a task written by "
                     "`recitebench export lm-eval`) to its frozen dataset, grade it (exact match and the four "
                     "outcomes) and write OUT/results.json + samples.jsonl; with --model, also the poems' bits.")
    li.add_argument("samples", help="lm-eval's samples_TASK_*.jsonl (lm_eval ... --log_samples --output_path)")
    li.add_argument("--data", required=True, help="the frozen dataset the task was exported from")
    li.add_argument("--out", required=True, help="folder for results.json and samples.jsonl")
    li.add_argument("--model", default=None, help="the model lm-eval ran (folder or hub id): adds bits and tokens")
    _add_task_format(li, "the prompt format the task used (as `export lm-eval --template`)")



def _add_task_format(p: argparse.ArgumentParser, template_help: str) -> None:
    """--template and --normalize of an lm-eval task, the same for its export and its import."""
    p.add_argument("--template", default="plain", choices=("plain", "chat"), help=f"{template_help} [default: plain]")
    p.add_argument("--normalize", default="none", choices=NORMALIZATIONS,
                   help="normalisation before comparing, as `recite --normalize` [default: none]")


def _add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", dest="overrides",
                   help=f"override a spec setting (repeatable; the value is YAML), e.g. {example}")


HANDLERS = {
    ("data", "build"): commands.data_build,
    ("train", None): commands.train,
    ("recite", None): commands.recite,
    ("extract", None): commands.extract,
    ("lens", None): commands.lens,
    ("retention", None): commands.retention,
    ("run", None): commands.run,
    ("capacity", None): commands.capacity,
    ("report", None): commands.report,
    ("ls", None): commands.ls,
    ("compare", None): commands.compare,
    ("study", None): commands.study,
    ("export", "lm-eval"): commands.export_lmeval,
    ("import", "lm-eval"): commands.import_lmeval,
}


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser that parsed `args`: `recitebench train --bogus` names train's usage, not the top level's."""
    current = parser
    for name in (getattr(args, "command", None), getattr(args, "action", None)):
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not name or not subs or name not in subs[0].choices:
            break
        current = subs[0].choices[name]
    return current


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # an unknown option is reported by the subcommand it was given to, with that subcommand's usage
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    handler = HANDLERS.get((args.command, getattr(args, "action", None)))
    if handler is None:
        parser.print_help(sys.stderr)
        print("\nrecitebench: error: give a subcommand (e.g. `recitebench data build --help`)", file=sys.stderr)
        return 2
    try:
        return handler(args)
    except RecitebenchError as e:
        print(f"recitebench: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the environment failed (disk full, read-only, permissions): name the file, no traceback
        reason = e.strerror or str(e)
        print(f"recitebench: error: {f'{e.filename}: ' if e.filename else ''}{reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("recitebench: interrupted (completed checkpoints and files are intact)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
