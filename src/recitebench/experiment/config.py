"""The experiment stage's configs: ExecutorConfig (where a grid's runs execute: the spec's `executor:` section)
and CapacityConfig (the capacity protocol: the `capacity:` section). Flags override both."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_choices, check_positive, opt

CAPACITY_PROTOCOL = """\
How much a model can memorise, measured where the score stops growing.

Protocol (a spec with a `capacity:` section, see configs/capacity_demo.yaml):
1. Pilot: each model trains on the pilot subset (default: the largest size) for `pilot_epochs` at every learning
   rate of `lrs`; the rate with the lowest final training loss is kept (memorisation is the fit of the training
   set). Cost: len(lrs) x pilot_epochs epochs of the largest set per model. Diverged rates count as rejected.
2. Sweep: each model, at its rate, trains on nested subsets (N=250 is a prefix of N=500, ...) for each seed, under
   one budget: `steps` optimizer steps for every size (recommended: a fixed epoch budget gives a small set far
   fewer updates, and its low recall is under-training, not capacity), else train.epochs; every run is recited
   with memorised bits.
3. Capacity: per model and seed, the plateau of memorised bits over the sizes (the largest value reached), the
   largest size recalled at >= `threshold`, each as a mean with a t-interval over seeds; whether the curve left the
   diagonal (saturated: the plateau is measured; otherwise the model memorised everything it was given, and the
   capacity is only a lower bound).
Both stages are ordinary grids written to OUT/pilot.yaml and OUT/sweep.yaml, so they skip finished runs, resume
interrupted ones and use any executor; `recitebench run OUT/sweep.yaml` re-runs the sweep alone.
"""

EXECUTORS = ("auto", "local", "pool", "slurm", "ray")


@dataclass
class ExecutorConfig:
    """How the runs of a grid are executed."""

    executor: str = opt(
        "auto",
        "local: one run after another in this process; pool: N worker processes on this machine, each run pinned "
        "to its GPU(s) with CUDA_VISIBLE_DEVICES; slurm: a job array through submitit; ray: Ray tasks; auto: pool "
        "when several GPUs are visible or --jobs > 1, else local",
        choices=EXECUTORS,
    )
    jobs: int | None = opt(None, "pool: runs at once (default: as many as the GPUs hold at gpus_per_run; 1 on CPU)")
    gpus_per_run: float = opt(
        1.0,
        "GPUs per run (a model entry may set its own): a fraction shares a GPU (0.5 = two runs per GPU); an integer "
        "> 1 trains under torchrun (DDP) on that many GPUs",
    )
    partition: str | None = opt(None, "slurm: partition")
    account: str | None = opt(None, "slurm: account")
    time_limit_min: int = opt(240, "slurm: time limit per run in minutes")
    max_parallel: int = opt(16, "slurm: most array tasks running at once")
    cpus_per_run: int = opt(8, "slurm: CPU cores per run")
    cluster: str | None = opt(
        None, "slurm: submitit cluster override (local runs the jobs as local processes, for tests and debugging)",
        choices=(None, "slurm", "local", "debug"),
    )
    ray_address: str | None = opt(None, "ray: cluster address (default: start a local Ray instance)")
    ray_runtime_env: str | None = opt(
        None, "ray: a YAML mapping merged into every task's runtime_env (env_vars merge key by key; pip, py_modules, "
              "... replace); RECITEBENCH_SHARED and RECITEBENCH_COMMIT travel by default, and on a remote cluster "
              "this recitebench as py_modules", example="{env_vars: {HF_HOME: /data/hf}}")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.ray_runtime_env is not None:
            import yaml

            try:
                env = yaml.safe_load(self.ray_runtime_env)
            except yaml.YAMLError as e:
                raise ValueError(f"ray_runtime_env is not YAML ({str(e).splitlines()[0]})") from None
            if not isinstance(env, dict) or not isinstance(env.get("env_vars", {}), dict):
                raise ValueError("ray_runtime_env must be a mapping (e.g. {env_vars: {HF_HOME: /data/hf}})")
        check_positive(self, "jobs", "gpus_per_run", "time_limit_min", "max_parallel", "cpus_per_run")
        if self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run):
            raise ValueError(f"gpus_per_run above 1 must be a whole number of GPUs, got {self.gpus_per_run}")


@dataclass
class CapacityConfig:
    """The capacity protocol's own settings (the spec's `capacity:` section; flags override)."""

    sizes: list[int] = opt([250, 500, 1000, 2000, 4000, 8000], "dataset sizes, each a prefix of the next")
    seeds: list[int] = opt([0], "seeds (each: its own subset order, initialisation and data order)")
    lrs: list[float] = opt([], "learning rates the pilot tries per model (empty: the spec's train.lr, no pilot)")
    pilot_epochs: int = opt(10, "epochs of each pilot run")
    pilot_size: int | None = opt(None, "dataset size of the pilot (default: the largest size)")
    threshold: float = opt(0.95, "exact recall a dataset size must reach to count as held")
    steps: int | None = opt(
        None,
        "optimizer steps per sweep run, the same for every size (epochs = steps / steps per epoch, rows batched by "
        "train.batch_size); default: train.epochs for every size, which gives a small set far fewer updates",
    )

    engine: str = opt(
        "grid",
        "grid: every point a full recitebench run (train + recite) on the executor; stacked: random-tokens only, every "
        "point of a model trained together in one graph until it converges (train/stacked.py)",
        choices=("grid", "stacked"),
    )
    size_multiples: list[float] = opt(
        [], "stacked: dataset sizes as multiples of the model's predicted capacity (replaces sizes)", example="0.5 2 4"
    )
    prior_bits_per_parameter: float = opt(3.6, "stacked: the prior that predicts a model's capacity (Morris et al.)")
    batch: int = opt(256, "stacked: sequences per step per model")
    max_steps: int = opt(40000, "stacked: the cap; a point not converged by then is reported as a lower bound")
    min_steps: int = opt(2000, "stacked: no convergence is declared before this many steps")
    eval_every: int = opt(1000, "stacked: steps between two measurements of memorised bits (with anneal_steps: "
                                    "between two saves of the state)")
    tolerance: float = opt(0.01, "stacked: converged when memorised bits change by less than this share over the last "
                                 "quarter of the steps")
    plateau_tolerance: float = opt(0.05, "stacked: a capacity is a plateau when the two largest sizes are within this "
                                         "share of each other (both converged)")
    schedule: str = opt("constant", "stacked: learning-rate schedule after warmup (inverse-sqrt has no horizon, so the "
                                    "cap does not end it)", choices=("constant", "inverse-sqrt"))
    decay_steps: int = opt(1000, "stacked: inverse-sqrt decays as sqrt(decay_steps / step) from this step on")
    compile: bool = opt(False, "stacked: torch.compile the forward and loss before the step is captured as a graph")
    anneal_steps: int = opt(0, "stacked: > 0: measure an annealed copy (rate linearly to 0 over this many steps) at "
                               "budgets 4/3 apart, so convergence compares annealed budgets T and 3T/4")
    rate_points: str = opt(
        "largest",
        "stacked: where the grid's rates train: at the largest size of the first seed (every size and seed at the "
        "grid's middle rate), or at every size and seed (the capacity is then read at the grid's best rate)",
        choices=("largest", "all"),
    )

    def __post_init__(self) -> None:
        check_choices(self)
        check_positive(self, "pilot_epochs", "pilot_size", "steps", "batch", "max_steps", "min_steps", "eval_every",
                       "prior_bits_per_parameter", "decay_steps")
        if any(x <= 0 for x in self.size_multiples) or self.size_multiples != sorted(set(self.size_multiples)):
            raise ValueError(f"size_multiples must be positive and increasing, got {self.size_multiples}")
        if any(lr <= 0 or lr != lr for lr in self.lrs):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.anneal_steps}")
        if not self.sizes or any(n <= 0 for n in self.sizes) or self.sizes != sorted(set(self.sizes)):
            raise ValueError(f"sizes must be positive and increasing, got {self.sizes}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")


@dataclass
class RetentionSpec:
    """A spec's `retention:` section: each model's grid run on `first` (phase A) continues on `then` (phase B) with
    snapshots, and every snapshot recites `first` (`recitebench retention`): memory of A while B is learned."""

    first: str = opt("", "dataset A, learned first: the grid's runs A__MODEL are phase A", example="cn")
    then: str = opt("", "dataset B, learned next from each A__MODEL's final model (run A.then.B__MODEL)", example="en")
    snapshot_every: int = opt(10, "epochs between the snapshots of phase B (and one before its first epoch)")
    snapshot_at: list[int] = opt([], "phase B's epochs to snapshot as well (the early ones, where forgetting is "
                                     "fast)", example="[1, 2, 4, 8]")
    reference: str = opt("none", "what A's memorised bits are measured against (as recite --reference)")
    train: dict = opt({}, "TrainConfig fields for phase B over the model's own (e.g. epochs)")

    def __post_init__(self) -> None:
        check_positive(self, "snapshot_every")
        if not self.first or not self.then:
            raise ValueError("retention needs first (dataset A) and then (dataset B)")
        if self.first == self.then:
            raise ValueError(f"retention: then must be another dataset than first ({self.first!r}); continuing on A "
                             f"itself is the control, a run of its own")
        for fixed in ("data", "out", "resume", "snapshot_every", "snapshot_at"):
            if fixed in self.train:
                raise ValueError(f"retention.train.{fixed} is set by the experiment runner; remove it")
