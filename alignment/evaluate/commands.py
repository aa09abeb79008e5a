"""What each `deepguard eval` verb does once its arguments are parsed (`alignment/evaluate/cli.py`
defines the arguments): load the models and data, run the measurement, write one JSON result."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _label(args) -> str:
    return args.label or (Path(args.model).name if args.model != "default" else "smollm2-default")


def _target(args):
    from alignment.evaluate.generate import EndpointGenerator, LocalGenerator

    if getattr(args, "endpoint", None):
        from alignment.models import load_model

        _, tokenizer = load_model(args.tokenizer)
        return EndpointGenerator(
            args.endpoint, args.endpoint_model or _label(args), tokenizer, args.api_key
        )
    return LocalGenerator.from_path(args.model, args.batch_size)


def _cases(args, local_target=None):
    """Harmful answers to prefill: --cases, else written by --answer-model and cached beside --out."""
    from alignment.evaluate.generate import LocalGenerator
    from alignment.evaluate.judge import DetectorJudge
    from alignment.evaluate.prefill import harmful_answers
    from alignment.evaluate.sources import load_prompts, read_cases, write_cases

    if args.cases:
        return read_cases(args.cases)[: args.limit or None]
    prompts = load_prompts(args.prompts, args.limit, args.offset)
    writer = LocalGenerator.from_path(args.answer_model, getattr(args, "batch_size", 8))
    cases, dropped = harmful_answers(writer, prompts, DetectorJudge())
    path = Path(args.out).with_name(Path(args.out).stem + "-harmful-cases.jsonl")
    write_cases(path, cases)
    print(
        f"harmful answers: {len(cases)} kept, {dropped} refused by the answer model; saved to {path}"
    )
    return cases


def _save(result: dict, path: str, started: float) -> None:
    result["seconds"] = round(time.perf_counter() - started, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


def run_prefill(args) -> int:
    from alignment.evaluate.generate import Sampling
    from alignment.evaluate.judge import DetectorJudge, EndpointJudge
    from alignment.evaluate.prefill import prefill_asr

    started = time.perf_counter()
    samplings = [] if args.no_greedy else [Sampling(max_new_tokens=args.max_new_tokens)]
    samplings += [Sampling(0.9, 0.6, seed, args.max_new_tokens) for seed in args.sampled_seeds]
    if not samplings:
        print("deepguard eval prefill: --no-greedy needs --sampled-seeds", file=sys.stderr)
        return 2
    judge = (
        EndpointJudge(args.judge_endpoint, args.judge_model, args.judge_api_key)
        if args.judge_endpoint
        else DetectorJudge()
    )
    cases = _cases(args)
    result = prefill_asr(_target(args), cases, args.ks, samplings, judge, args.mode)
    result.update(kind="prefill", model=_label(args))
    _save(result, args.out, started)
    print(
        f"prefill ASR % ({judge.name} | prompt-aware): "
        + ", ".join(
            f"k={k}: {v['asr']['mean']:.1f} | {v['asr_aware']['mean']:.1f}"
            for k, v in result["k"].items()
        )
        + f" ({len(cases)} prompts, {result['seconds']}s) -> {args.out}"
    )
    return 0


def run_kl(args) -> int:
    from alignment.evaluate.kl import per_position_kl, plot_kl
    from alignment.models import load_model

    started = time.perf_counter()
    cases = _cases(args)
    model, tokenizer = load_model(args.model)
    reference, _ = load_model(args.reference)
    result = per_position_kl(model, reference, tokenizer, cases, args.positions)
    result.update(kind="kl", model=f"{_label(args)} vs {Path(args.reference).name}")
    _save(result, args.out, started)
    png = plot_kl({result["model"]: result}, Path(args.out).with_suffix(".png"))
    print(f"KL per position: first 5 {result['kl'][:5]} -> {args.out}, {png}")
    return 0


def run_finetune_attack(args) -> int:
    from alignment.evaluate.finetune_attack import finetune_attack
    from alignment.evaluate.sources import benign_tasks, load_prompts
    from alignment.models import load_model

    started = time.perf_counter()
    styles = args.styles.split(",")
    # Harmful answers are needed to attack with, or to measure on when no --eval-prompts are given.
    needs_cases = any(style != "benign" for style in styles) or not args.eval_prompts
    cases = _cases(args) if needs_cases else []
    if needs_cases and len(cases) < 2:
        print("deepguard eval finetune-attack: need at least 2 harmful cases", file=sys.stderr)
        return 2
    # The first --examples cases train the attack; the rest (or --eval-prompts) measure it.
    train_cases, eval_cases = cases[: args.examples], cases[args.examples :]
    if args.eval_prompts:
        eval_prompts = load_prompts(args.eval_prompts)
        overlap = {c.prompt for c in train_cases} & set(eval_prompts)
        if overlap:
            print(
                f"deepguard eval finetune-attack: {len(overlap)} --eval-prompts are also attack "
                "examples; held-out means disjoint",
                file=sys.stderr,
            )
            return 2
    else:
        eval_prompts = [c.prompt for c in eval_cases] or load_prompts(None, 20, 180)
    all_tasks = benign_tasks(args.tasks) if args.tasks else []
    # The first --task-limit tasks measure utility; the benign style trains on the next --examples.
    tasks = all_tasks[: args.task_limit] if args.task_limit else all_tasks
    benign_train = all_tasks[len(tasks) : len(tasks) + args.examples]
    if "benign" in styles and len(benign_train) < 2:
        print(
            f"deepguard eval finetune-attack: the benign style needs tasks past --task-limit "
            f"({len(all_tasks)} in {args.tasks})",
            file=sys.stderr,
        )
        return 2
    model, tokenizer = load_model(args.model)
    result = finetune_attack(
        model,
        tokenizer,
        train_cases,
        eval_prompts,
        tasks,
        args.work_dir,
        objectives=args.objectives.split(","),
        styles=styles,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch=args.batch,
        warmup_steps=args.warmup_steps,
        betas=args.betas,
        later_beta=args.later_beta,
        benign_train=benign_train if "benign" in styles else [],
    )
    result.update(kind="finetune-attack", model=_label(args))
    _save(result, args.out, started)
    print(
        "fine-tuning attack ASR %: initial "
        + f"{result['initial']['asr']:.1f}, "
        + ", ".join(f"{k}: {v['asr']:.1f}" for k, v in result["attacks"].items())
        + f" -> {args.out}"
    )
    return 0


def run_overrefusal(args) -> int:
    from alignment.evaluate.benign import refusal_rate
    from alignment.evaluate.generate import Sampling
    from alignment.evaluate.sources import load_prompts

    started = time.perf_counter()
    prompts = load_prompts(args.prompts, args.limit)
    result = refusal_rate(_target(args), prompts, Sampling(max_new_tokens=args.max_new_tokens))
    result.update(kind="overrefusal", model=_label(args), set=Path(args.prompts).name)
    _save(result, args.out, started)
    print(
        f"refusal rate on {len(prompts)} safe prompts: {result['refusal_rate']:.1f}% -> {args.out}"
    )
    return 0


def run_utility(args) -> int:
    from alignment.evaluate.benign import utility
    from alignment.evaluate.generate import Sampling
    from alignment.evaluate.sources import benign_tasks

    started = time.perf_counter()
    result = utility(
        _target(args),
        benign_tasks(args.tasks, args.limit),
        Sampling(max_new_tokens=args.max_new_tokens),
    )
    result.update(kind="utility", model=_label(args))
    _save(result, args.out, started)
    print(
        f"utility (unigram F1 x100) on {result['tasks']} tasks: {result['unigram_f1']:.1f} -> {args.out}"
    )
    return 0


def run_recovery(args) -> int:
    from alignment.evaluate.generate import LocalGenerator, Sampling
    from alignment.evaluate.recovery import recovery_profile

    started = time.perf_counter()
    cases = _cases(args)
    result = recovery_profile(
        LocalGenerator.from_path(args.model, args.batch_size),
        cases,
        args.ks,
        Sampling(max_new_tokens=args.max_new_tokens),
    )
    result.update(kind="recovery", model=_label(args))
    _save(result, args.out, started)
    print(
        f"recovered {result['recovered']}/{result['attacks']}; hold_back_tokens {result['hold_back_tokens']} -> {args.out}"
    )
    return 0


def _breadth_items(args):
    """The held-out harmful prompts per family and the harmless ones that `eval breadth` and
    `eval start-mass` share."""
    from alignment.evaluate.breadth import harmful_items, harmless_items
    from alignment.evaluate.sources import load_prompts

    return harmful_items(args.per_family) + harmless_items(load_prompts(args.xstest), args.n_xstest)


def run_start_mass(args) -> int:
    import random

    from alignment.data.files import read_jsonl
    from alignment.evaluate.start_mass import evaluate_start_mass
    from alignment.models import load_model

    started = time.perf_counter()
    items = _breadth_items(args)
    training = []
    if args.triplets:
        training = [row["prompt"] for row in read_jsonl(args.triplets, required=("prompt",))]
        training = random.Random(0).sample(training, min(args.n_training, len(training)))
    model, tokenizer = load_model(args.model)
    result = evaluate_start_mass(model, tokenizer, items, training)
    result.update(kind="start-mass", model=_label(args))
    _save(result, args.out, started)
    sides = ", ".join(f"{k} {v['mean']:.3f}" for k, v in result["by_side"].items())
    print(f"p(refusal start) at the answer's first token: {sides} -> {args.out}")
    return 0


def run_breadth(args) -> int:
    from alignment.evaluate.breadth import api_default_samplings, evaluate_breadth

    started = time.perf_counter()
    items = _breadth_items(args)

    def save_partial(partial: dict) -> None:
        _save(
            {**partial, "kind": "breadth", "model": _label(args), "complete": False},
            args.out,
            started,
        )

    result = evaluate_breadth(
        _target(args),
        items,
        api_default_samplings(args.max_new_tokens, args.sampled_seeds),
        on_run=save_partial,
    )
    result.update(kind="breadth", model=_label(args), complete=True)
    _save(result, args.out, started)
    greedy, sampled = result["greedy"], result["sampled"]
    line = f"harmful refused (phrase/aware): greedy {greedy['harmful']['phrase']}/{greedy['harmful']['aware']}%"
    if sampled:  # absent with --sampled-seeds ""
        line += (
            f", T=1.0 {sampled['harmful']['phrase']['mean']}/{sampled['harmful']['aware']['mean']}%"
        )
    print(
        line
        + f"; harmless refused greedy {greedy['harmless']['phrase']}/{greedy['harmless']['aware']}%, "
        f"recovered {greedy['harmless']['recovered']}% ({result['seconds']}s) -> {args.out}"
    )
    return 0


def run_spot_check(args) -> int:
    from alignment.evaluate.spotcheck import agreement, draw, read_labelled

    if args.draw:
        rows = draw(json.loads(Path(args.draw).read_text(encoding="utf-8")), args.n, args.seed)
        out = Path(args.out or Path(args.draw).with_suffix(".spotcheck.jsonl"))
        out.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        print(f"{len(rows)} answers to label (set 'refusal' to true or false) -> {out}")
        return 0
    print(json.dumps(agreement(read_labelled(args.labelled)), indent=2))
    return 0


def run_report(args) -> int:
    from alignment.evaluate.report import load_results, write_report

    path = write_report(load_results(args.results), args.out_dir, args.title)
    print(f"report: {path}")
    return 0


def run_gate(args) -> int:
    from alignment.evaluate.breadth import api_default_samplings
    from alignment.evaluate.canaries import MAX_NEW_TOKENS as CANARY_TOKENS
    from alignment.evaluate.canaries import canary_regressions, canary_summary, measure_canaries
    from alignment.evaluate.gate import (
        Margins,
        gate_settings,
        measure,
        regressions,
        reusable_baseline,
        within_chance,
    )
    from alignment.evaluate.generate import LocalGenerator, Sampling
    from alignment.evaluate.sources import benign_tasks, load_prompts

    started = time.perf_counter()
    args.model = args.baseline
    cases = _cases(args)
    safe = load_prompts(args.safe_prompts, args.safe_limit)
    tasks = benign_tasks(args.tasks, args.task_limit)
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    breadth_items, breadth_samplings = None, ()
    if args.breadth_per_family:
        from alignment.evaluate.breadth import harmful_items, harmless_items

        breadth_items = harmful_items(args.breadth_per_family) + harmless_items(
            load_prompts(args.safe_prompts)
        )
        breadth_samplings = api_default_samplings(48, args.breadth_sampled_seeds)
    settings = gate_settings(
        baseline=args.baseline,
        cases=cases,
        ks=args.ks,
        safe_prompts=safe,
        tasks=tasks,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        breadth_items=breadth_items,
        breadth_samplings=breadth_samplings,
    )
    reused = None
    if args.baseline_from:
        try:
            reused = reusable_baseline(json.loads(Path(args.baseline_from).read_text()), settings)
        except (OSError, ValueError) as exc:
            print(
                f"deepguard eval gate: --baseline-from {args.baseline_from}: {exc}", file=sys.stderr
            )
            return 2
        print(f"baseline numbers reused from {args.baseline_from} (same settings and weights)")

    generators = {
        role: LocalGenerator.from_path(path, args.batch_size)
        for role, path in (("candidate", args.candidate), ("baseline", args.baseline))
    }
    metrics = {
        role: measure(
            generator, cases, args.ks, safe, tasks, sampling, breadth_items, breadth_samplings
        )
        for role, generator in generators.items()
        if not (role == "baseline" and reused is not None)
    }
    if reused is not None:
        metrics["baseline"] = reused
    # Cheap, so measured for both models every time and never reused from an older result.
    canary_samplings = api_default_samplings(CANARY_TOKENS, args.canary_seeds)
    canaries = {
        role: measure_canaries(generator, canary_samplings)
        for role, generator in generators.items()
    }
    margins = Margins(
        args.max_asr_increase,
        args.max_overrefusal_increase,
        args.max_utility_drop,
        args.max_breadth_change,
        args.breadth_alpha,
    )
    failures = regressions(metrics["candidate"], metrics["baseline"], margins)
    failures += canary_regressions(canaries["candidate"], canaries["baseline"], args.breadth_alpha)
    chance = within_chance(metrics["candidate"], metrics["baseline"], margins)
    _save(
        {
            "kind": "gate",
            "model": Path(args.candidate).name,
            "settings": settings,
            "baseline_reused_from": args.baseline_from,
            **metrics,
            "canaries": {
                role: {**canary_summary(result), **result} for role, result in canaries.items()
            },
            "regressions": failures,
            "beyond_margin_within_chance": chance,
            "passed": not failures,
        },
        args.out,
        started,
    )
    for line in chance:
        print(f"within chance (not failed): {line}", file=sys.stderr)
    for line in failures:
        print(f"REGRESSION: {line}", file=sys.stderr)
    print(
        f"gate {'FAILED' if failures else 'passed'}: candidate {metrics['candidate']} vs baseline "
        f"{metrics['baseline']} -> {args.out}"
    )
    return 1 if failures else 0
