"""The `cellcall` command line: thin commands that parse, call one function and print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cellcall.config import ConfigError, Settings, load_settings

# the flags `run`, `watch`, `serve` and `doctor` share, declared once
GoalsDir = Annotated[Path | None, typer.Argument(help="The goals folder (default: paths.goals).")]
LineKind = Annotated[str | None, typer.Option("--line", help="emulator | sim7600 | sip (default: line.kind in settings).")]
Scenario = Annotated[str | None, typer.Option("--scenario", help="Emulator far-end scenario: built-in name or .toml path.")]
AtPort = Annotated[str | None, typer.Option("--at-port", help="Modem AT port (default: autodetect).")]
AudioPort = Annotated[str | None, typer.Option("--audio-port", help="Modem PCM audio port (default: autodetect).")]
JsonLog = Annotated[bool, typer.Option("--json-log", help="Log one JSON object per line (also log.json).")]


app = typer.Typer(
    help="Markdown goal files in, phone calls out (SIM7600G-H modem, local models).",
    no_args_is_help=True,
    add_completion=False,
)

_state: dict[str, Path | None] = {"config": None}


@app.callback()
def main(
    config: Path | None = typer.Option(None, "--config", "-c", envvar="CELLCALL_CONFIG", help="Path to cellcall.toml."),
) -> None:
    """cellcall places and answers phone calls described by markdown goal files."""
    _state["config"] = config


def settings(overrides: dict | None = None) -> Settings:
    """The effective settings, or a clean exit 2 with the configuration error."""
    try:
        return load_settings(_state["config"], overrides=overrides)
    except ConfigError as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def line_overrides(line: str | None, scenario: str | None, at_port: str | None, audio_port: str | None) -> dict:
    """The --line/--scenario/--port flags as settings; explicit ports mean the real modem behind them."""
    if (at_port or audio_port) and line == "emulator":
        typer.secho(
            "error: --at-port/--audio-port name a real modem; the emulator makes its own ports "
            "(drop --line emulator, or the ports)",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    kind = line or ("sim7600" if at_port or audio_port else None)
    return {"line.kind": kind, "line.scenario": scenario, "line.at_port": at_port, "line.audio_port": audio_port}


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Goal files, or folders of *.md goal files."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Check goal files before anything dials: exit 0 if every file is valid, 1 otherwise."""
    from cellcall.cli.tables import checks_json, checks_text
    from cellcall.goal import check_goal_files

    checks = check_goal_files(paths, settings().policy.default_country)
    typer.echo(checks_json(checks) if as_json else checks_text(checks))
    raise typer.Exit(0 if checks and all(check.ok for check in checks) else 1)


@app.command()
def new(
    name: str | None = typer.Argument(None, help="Goal id (also the outbox folder name)."),
    number: str | None = typer.Option(None, "--number", help="Number to call (default: a fictional 555-01xx number)."),
    objective: str | None = typer.Option(None, "--objective", help="What the call must achieve, in one sentence."),
    persona: str | None = typer.Option(None, "--persona", help="Who the agent is on the call."),
    opening: str | None = typer.Option(None, "--opening", help="The agent's first sentence."),
) -> None:
    """Print a new goal file that passes `cellcall validate` (redirect it into goals/)."""
    from cellcall.goal import GoalError, scaffold_goal

    try:
        typer.echo(scaffold_goal(name, number, objective, persona, opening, settings().policy.default_country), nl=False)
    except GoalError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


@app.command("config")
def show_config(as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON.")) -> None:
    """Print the effective settings and where each came from (secrets redacted)."""
    from cellcall.cli.tables import print_settings

    print_settings(settings().effective(), as_json)


@app.command()
def calls(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many recent calls."),
    as_json: bool = typer.Option(False, "--json", help="Print the calls as JSON."),
) -> None:
    """Recent calls from the outbox, newest first (with [queue]: the whole fleet's)."""
    from cellcall.cli.tables import print_calls
    from cellcall.outbox import list_calls

    if settings().queue.url:
        from cellcall.cli.queue import print_fleet_calls

        print_fleet_calls(settings(), limit, as_json)
        return
    print_calls(list_calls(Path(settings().paths.outbox), limit), as_json)


@app.command()
def show(call: str = typer.Argument(..., help="Call id, outbox folder name, a unique prefix of either, or a path.")) -> None:
    """Print a call's report.md."""
    from cellcall.outbox import CallLookupError, report_text

    try:
        typer.echo(report_text(Path(settings().paths.outbox), call), nl=False)
    except CallLookupError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def watch(
    goals_dir: GoalsDir = None,
    line: LineKind = None,
    scenario: Scenario = None,
    at_port: AtPort = None,
    audio_port: AudioPort = None,
    json_log: JsonLog = False,
) -> None:
    """Turn GOALS_DIR into a phone: dial dropped goals, answer inbound calls; stop with SIGTERM or Ctrl-C."""
    from cellcall.watch.runner import WatchError
    from cellcall.watch.runner import watch as watch_folder

    overrides = line_overrides(line, scenario, at_port, audio_port) | {"log.json": True if json_log else None}
    try:
        watch_folder(settings(overrides), goals_dir)
    except WatchError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    goals_dir: GoalsDir = None,
    listen: str | None = typer.Option(None, "--listen", help="HOST:PORT for the API (default: api.listen, 127.0.0.1:8765)."),
    cert: Path | None = typer.Option(None, "--cert", help="TLS certificate (PEM); with --key, serve HTTPS."),
    key: Path | None = typer.Option(None, "--key", help="TLS private key (PEM)."),
    line: LineKind = None,
    scenario: Scenario = None,
    at_port: AtPort = None,
    audio_port: AudioPort = None,
    json_log: JsonLog = False,
) -> None:
    """`watch` plus an HTTP API and a live page: place, follow and hang up calls from another host."""
    from cellcall.serve.auth import ServeError
    from cellcall.serve.server import serve as serve_folder
    from cellcall.watch.runner import WatchError

    overrides = line_overrides(line, scenario, at_port, audio_port) | {"log.json": True if json_log else None}
    overrides |= {"api.listen": listen, "api.tls_cert": str(cert) if cert else None, "api.tls_key": str(key) if key else None}
    try:
        serve_folder(settings(overrides), goals_dir)
    except (ServeError, WatchError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def status(
    goals_dir: GoalsDir = None,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """The watch queue (queued, waiting with due times, running), the line and the last calls."""
    import json

    from rich.console import Console

    from cellcall.watch.status import collect, render

    try:
        data = collect(settings(), goals_dir)
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if settings().queue.url:
        from cellcall.cli.queue import fleet_status, render_fleet

        data["fleet"] = fleet_status(settings())
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        Console().print(render(data))
        if "fleet" in data:
            Console().print(render_fleet(data["fleet"]))


@app.command()
def sim(
    scenario: str = typer.Argument("dentist", help="Far-end scenario: built-in name or path to a .toml file."),
    ring: str | None = typer.Option(None, "--ring", help="Ring the host from this number instead of waiting for ATD."),
    fault: list[str] = typer.Option([], "--fault", help="Emulator fault KEY[=VALUE], e.g. vanish_after_s=5, doubled_crlf."),
) -> None:
    """Run the emulated SIM7600G-H on two ptys; print their paths, then the far end's measurements."""
    from cellcall.emulator.scenario import ScenarioError
    from cellcall.emulator.sim import SimError, format_metrics, run_sim

    try:
        metrics = run_sim(scenario, ring, fault, typer.echo)
    except (ScenarioError, SimError, ImportError, RuntimeError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_metrics(metrics))


@app.command()
def doctor(
    line: LineKind = None,
    at_port: AtPort = None,
    audio_port: AudioPort = None,
    engines: bool = typer.Option(True, "--engines/--no-engines", help="Also load and smoke-test STT, TTS and LLM."),
) -> None:
    """Modem ports, SIM, registration, signal and operator, then the speech and language engines."""
    from cellcall.cli.doctor import run_doctor

    text, ok = run_doctor(settings(line_overrides(line, None, at_port, audio_port)), at_port, audio_port, engines)
    typer.echo(text)
    raise typer.Exit(0 if ok else 1)


@app.command("eval")
def eval_command(
    goal: Path = typer.Argument(..., help="The goal file to dry-run."),
    scenario: str = typer.Option(..., "--scenario", help="Persona: built-in name or .toml path (docs/personas.md)."),
    runs: int = typer.Option(1, "--runs", min=1, help="Calls to make against the persona."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable results."),
    line: str = typer.Option("emulator", "--line", help="emulator | sip (the persona's far end over SIP on loopback)."),
) -> None:
    """Dry-run GOAL against an emulated far end that listens: success, report truth, prompt leaks, repeats, latency."""
    from cellcall.cli.evaluate import EXIT_BAD_INPUT, eval_goal
    from cellcall.cli.run import end_process

    code = eval_goal(goal, scenario, runs, as_json, settings(), line)
    if code == EXIT_BAD_INPUT:
        raise typer.Exit(code)  # nothing was started: a normal exit
    end_process(code)  # llama.cpp's server thread can abort a normal interpreter shutdown


bench_app = typer.Typer(help="Benchmarks: print figures and update docs/benchmarks.md.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("line")
def bench_line(
    calls: int = typer.Option(3, "--calls", min=1, help="Emulated calls to measure."),
    seconds: float = typer.Option(5.0, "--seconds", min=0.5, help="Uplink fed this long per call."),
) -> None:
    """Modem driver figures on the emulator: answer time, uplink rate, underruns, barge-in stop, line-error time."""
    from cellcall.bench.line import run_line_bench

    typer.echo(run_line_bench(calls, seconds))


@bench_app.command("engines")
def bench_engines(runs: int = typer.Option(5, "--runs", min=1, help="Runs per figure (medians are printed).")) -> None:
    """STT real-time factor, TTS first chunk, LLM first token and tokens/s, load times, peak memory."""
    from cellcall.bench.engines import run_bench

    typer.echo(run_bench(settings(), runs))


@bench_app.command("watch")
def bench_watch(drops: int = typer.Option(20, "--drops", min=1, help="Goal files dropped, one at a time.")) -> None:
    """Goal file dropped -> ATD on the AT port (emulator, models warm): median over the drops."""
    from cellcall.bench.watch import run_bench

    typer.echo(run_bench(settings(), drops))


@bench_app.command("serve")
def bench_serve(posts: int = typer.Option(10, "--posts", min=1, help="Goals posted to the API, one at a time.")) -> None:
    """Goal POSTed to `cellcall serve` -> 202 and -> ATD, and the event stream's delay (emulator, models warm)."""
    from cellcall.bench.serve import run_bench

    typer.echo(run_bench(settings(), posts))


relay_app = typer.Typer(help="GPU relay: run STT, LLM and TTS for appliances on another box.", no_args_is_help=True)
app.add_typer(relay_app, name="relay")


@relay_app.command("serve")
def relay_serve(
    listen: str | None = typer.Option(None, "--listen", help="HOST:PORT (default: relay.listen, 127.0.0.1:8770)."),
    cert: Path | None = typer.Option(None, "--cert", help="TLS certificate (PEM); with --key, appliances use tls://."),
    key: Path | None = typer.Option(None, "--key", help="TLS private key (PEM)."),
) -> None:
    """Serve this box's engines (CPU or CUDA, see [relay]) to appliances; token: CELLCALL_RELAY_TOKEN."""
    from cellcall.engines import EngineError
    from cellcall.relay.server import serve_relay
    from cellcall.serve.auth import ServeError

    overrides = {
        "relay.listen": listen,
        "relay.tls_cert": str(cert) if cert else None,
        "relay.tls_key": str(key) if key else None,
    }
    try:
        serve_relay(settings(overrides), typer.echo)
    except (ServeError, EngineError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@bench_app.command("relay")
def bench_relay(runs: int = typer.Option(5, "--runs", min=1, help="Turns per figure (medians are printed).")) -> None:
    """Relay on loopback: protocol overhead per turn, voice-to-voice via relay vs local, appliance RSS."""
    from cellcall.bench.relay import run_bench

    typer.echo(run_bench(settings(), runs))


@bench_app.command("fleet")
def bench_fleet(
    runs: int = typer.Option(10, "--runs", min=1, help="Pushes and drops timed one at a time (medians are printed)."),
    goals: int = typer.Option(30, "--goals", min=3, help="Goals pushed at once for the goals-per-minute figure."),
) -> None:
    """Push -> ATD through the NATS queue vs the local goals folder; goals per minute on three emulated lines."""
    from cellcall.bench.fleet import BenchError, run_bench

    try:
        typer.echo(run_bench(settings(), runs, goals))
    except BenchError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


from cellcall.cli.queue import queue_app  # noqa: E402 - beside the other sub-apps

app.add_typer(queue_app, name="queue")

openclaw_app = typer.Typer(help="OpenClaw: the skill, memory search over the outbox, pushes on call end.", no_args_is_help=True)
app.add_typer(openclaw_app, name="openclaw")


@openclaw_app.command("install-skill")
def openclaw_install_skill(
    workspace: Path | None = typer.Option(
        None, "--workspace", help="OpenClaw workspace (default: openclaw.workspace or ~/.openclaw/workspace)."
    ),
    remote: str | None = typer.Option(None, "--remote", help="cellcall serve's URL: install the variant that uses its API."),
) -> None:
    """Put the cellcall skill into an OpenClaw workspace (skills/cellcall/SKILL.md)."""
    from cellcall.openclaw.setup import OpenClawSetupError, install_skill

    try:
        typer.echo(f"installed {install_skill(settings(), workspace, remote)}")
        if remote:
            typer.echo(f"set CELLCALL_URL={remote} and CELLCALL_API_TOKEN=<the serve token> in OpenClaw's environment")
    except (OSError, OpenClawSetupError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@openclaw_app.command("setup")
def openclaw_setup(apply: bool = typer.Option(False, "--apply", help="Run `openclaw config set` instead of printing.")) -> None:
    """Print (or apply) the OpenClaw config cellcall needs: memory extraPaths, hooks, the hook mapping."""
    from cellcall.openclaw.setup import OpenClawSetupError, apply_setup, setup_text

    if not apply:
        typer.echo(setup_text(settings()))
        return
    try:
        for change in apply_setup(settings()):
            typer.echo(f"set {change.path} = {change.value}")
    except OpenClawSetupError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@openclaw_app.command("flush")
def openclaw_flush(
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Also resend pushes that were rejected or refused."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds per request."),
) -> None:
    """Deliver the queued pushes now and say what happened to each (exit 1 if any is left)."""
    from cellcall.openclaw.notify import deliver_pending, describe_report

    report = deliver_pending(settings(), timeout, retry_failed=retry_failed, force=True)
    typer.echo(describe_report(report))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def run(
    goal: Path = typer.Argument(..., help="The goal file (markdown) describing the call."),
    line: LineKind = None,
    scenario: Scenario = None,
    at_port: AtPort = None,
    audio_port: AudioPort = None,
    as_json: bool = typer.Option(False, "--json", help="Print the final call record as JSON instead of the live view."),
) -> None:
    """Place the call described by GOAL: live view while it runs, then the report's path."""
    from cellcall.cli.run import EXIT_BAD_GOAL, end_process, run_goal

    code = run_goal(
        goal,
        settings(line_overrides(line, scenario, at_port, audio_port)),
        scenario=scenario,
        at_port=at_port,
        audio_port=audio_port,
        as_json=as_json,
    )
    if code == EXIT_BAD_GOAL:
        raise typer.Exit(code)  # nothing was started: a normal exit
    end_process(code)


@bench_app.command("conversation")
def bench_conversation(
    runs: int = typer.Option(3, "--runs", min=1, help="Calls per persona."),
    personas: str = typer.Option("", "--personas", help="Comma-separated personas (default: every built-in)."),
) -> None:
    """`cellcall eval` over personas: success %, false yes, prompt text, repeats, v2v p50 -> docs/benchmarks.md."""
    from cellcall.bench.conversation import run_bench
    from cellcall.cli.run import end_process
    from cellcall.eval.runner import EvalError

    try:
        markdown = run_bench(settings(), [p.strip() for p in personas.split(",") if p.strip()], runs)
    except EvalError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(markdown)
    end_process(0)


@bench_app.command("answering")
def bench_answering(
    runs: int = typer.Option(1, "--runs", min=1, help="Calls per answering scenario."),
    load: int = typer.Option(0, "--load", min=0, help="Spinning processes beside the calls (a busy box, on purpose)."),
) -> None:
    """Who answered, over the answering scenarios: confusion table, beep -> message, menu key latency."""
    from cellcall.bench.answering import run_bench
    from cellcall.cli.run import end_process

    typer.echo(run_bench(settings(), runs, load=load))
    end_process(0)  # llama.cpp's server thread can abort a normal interpreter shutdown


@bench_app.command("exits")
def bench_exits(
    runs: int = typer.Option(3, "--runs", min=1, help="Calls per case (a far-end hang-up, a SIGTERM)."),
    load: int = typer.Option(0, "--load", min=0, help="Spinning processes beside the calls (a busy box, on purpose)."),
) -> None:
    """`cellcall run` as a process: its exit after the far end hangs up, and after SIGTERM."""
    from cellcall.bench.exits import run_bench

    typer.echo(run_bench(runs, load=load))


@bench_app.command("calls")
def bench_calls(
    scenarios: str = typer.Option("dentist,barge-in,echo,backchannel", "--scenarios", help="Comma-separated emulator scenarios."),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Calls per scenario."),
    load: int = typer.Option(0, "--load", min=0, help="Spinning processes beside the calls (a busy box, on purpose)."),
    line: str = typer.Option("emulator", "--line", help="emulator | sip (the scenarios' far end over SIP on loopback)."),
) -> None:
    """Real-time calls on the emulator with the real models: latency, barge-in, echo, underruns, CPU, memory."""
    from cellcall.bench.calls import run_bench
    from cellcall.cli.run import end_process
    from cellcall.emulator.scenario import ScenarioError
    from cellcall.line import LineError

    try:
        names = [s.strip() for s in scenarios.split(",") if s.strip()]
        markdown = run_bench(settings(), names, repeat, load=load, line_kind=line)
    except (ScenarioError, LineError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(markdown)
    end_process(0)  # llama.cpp's server thread can abort a normal interpreter shutdown
