"""Firmware projects: ``firmware_templates/<name>/`` rendered for one model and one board.

The last deploy step, after ``codegen``; ``tinynas flash`` and ``tinynas measure`` take over from here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tinynas.deploy.codegen import TFLM_BUILTIN_OPS, arena_size_with_margin, resizes, write_model_sources
from tinynas.deploy.outdir import install_files, interrupted_files
from tinynas.errors import DeployError
from tinynas.hardware.profile import HardwareProfile
from tinynas.resources import data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

MANIFEST = "manifest.toml"
STAMP = ".tinynas_firmware.json"  # marks a folder this module created (and may replace)
COMMON_FILES = ("tinynas_protocol.h", "tinynas_protocol.c", "tinynas_runner.h", "tinynas_runner.cc")
_UNRENDERED = re.compile(r"\{\{|\{%|\{#|%\}|\}\}")


@dataclass(frozen=True)
class CortexM:
    """Compiler and timer facts for one Cortex-M core (Arm ARM and GCC's -mcpu list)."""

    mcpu: str
    fpu_flags: str  # -mfpu/-mfloat-abi when the core has an FPU
    timer: str  # "dwt": DWT CYCCNT (ARMv7-M, ARMv8-M mainline); "systick": M0/M0+/M23 have no DWT counter
    tflm_target_arch: str  # TARGET_ARCH of TFLM's cortex_m_generic makefile target


CORTEX_M: dict[str, CortexM] = {
    "cortex-m0": CortexM("cortex-m0", "", "systick", "cortex-m0"),
    "cortex-m0plus": CortexM("cortex-m0plus", "", "systick", "cortex-m0plus"),
    "cortex-m3": CortexM("cortex-m3", "", "dwt", "cortex-m3"),
    "cortex-m4": CortexM("cortex-m4", "", "dwt", "cortex-m4"),
    "cortex-m4f": CortexM("cortex-m4", "-mfpu=fpv4-sp-d16 -mfloat-abi=hard", "dwt", "cortex-m4+fp"),
    "cortex-m7": CortexM("cortex-m7", "-mfpu=fpv5-sp-d16 -mfloat-abi=hard", "dwt", "cortex-m7+fp"),
    "cortex-m33": CortexM("cortex-m33", "-mfpu=fpv5-sp-d16 -mfloat-abi=hard", "dwt", "cortex-m33+fp"),
    "cortex-m55": CortexM("cortex-m55", "-mfloat-abi=hard", "dwt", "cortex-m55"),
    "cortex-m85": CortexM("cortex-m85", "-mfloat-abi=hard", "dwt", "cortex-m85"),
}
# The Arduino TFLite Micro libraries at the revision a project installs: name -> (git URL, ref, the
# library.properties version). Pinned, so a project built a year on gets the kernels that
# missing_ops in the arduino and platformio manifests was checked against.
ARDUINO_TFLM_LIBRARIES: dict[str, tuple[str, str, str]] = {
    # the repository's last sync from tflite-micro (February 2023); it has no release tags
    "Arduino_TensorFlowLite": ("https://github.com/tensorflow/tflite-micro-arduino-examples.git",
                               "7948b85e020470a30a83bf00e10fc43b486bfcba", "2.4.0-ALPHA"),
    "Chirale_TensorFLowLite": ("https://github.com/spaziochirale/Chirale_TensorFlowLite.git", "v2.0.0", "2.0.0"),
}
_CORE_ALIASES = {"cortex-m0+": "cortex-m0plus", "cortex-m4+fp": "cortex-m4f", "cortex-m7f": "cortex-m7",
                 "cortex-m33f": "cortex-m33"}


def normalize_core(core: str) -> str:
    """A profile's core name in the spelling the manifests use (``Cortex-M0+`` -> ``cortex-m0plus``)."""
    name = core.strip().lower()
    return _CORE_ALIASES.get(name, name)


def cortex_m(profile: HardwareProfile) -> CortexM | None:
    """Compiler flags and timer for the profile's core; None for a core that is not a Cortex-M."""
    core = normalize_core(profile.core)
    facts = CORTEX_M.get(core)
    if facts is None:
        return None
    fpu = facts.fpu_flags if (profile.fpu or core == "cortex-m4f") else ""
    mcpu = profile.ecosystem.cmake_cpu or facts.mcpu
    arch = facts.tflm_target_arch if fpu else facts.tflm_target_arch.replace("+fp", "")
    return CortexM(mcpu, fpu, facts.timer, arch)


@dataclass(frozen=True)
class FirmwareTemplate:
    """One ``firmware_templates/<name>/manifest.toml``: what the template builds and for which boards."""

    name: str
    description: str
    ecosystem: str
    kinds: tuple[str, ...]
    cores: tuple[str, ...]
    requires: tuple[str, ...]  # profile.ecosystem fields that must be filled (board ids)
    model_dir: str  # where model_data.*, op_resolver.h and the protocol go, inside the project
    model_source_ext: str  # ".cc", or ".cpp" where the build tool ignores .cc
    files: tuple[str, ...]  # what a rendered project contains (checked after rendering)
    build: str  # Jinja strings: the commands, filled with the profile's board ids
    flash: str
    path: str
    missing_ops: tuple[str, ...] = ()  # builtin ops its TFLite Micro library (as the project pins it) has no kernel for

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "ecosystem": self.ecosystem,
                "kinds": list(self.kinds), "cores": list(self.cores), "requires": list(self.requires),
                "model_dir": self.model_dir, "model_source_ext": self.model_source_ext, "files": list(self.files),
                "build": self.build, "flash": self.flash, "path": self.path, "missing_ops": list(self.missing_ops)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FirmwareTemplate":
        return cls(name=str(data["name"]), description=str(data["description"]), ecosystem=str(data["ecosystem"]),
                   kinds=tuple(data["kinds"]), cores=tuple(data["cores"]), requires=tuple(data["requires"]),
                   model_dir=str(data["model_dir"]), model_source_ext=str(data["model_source_ext"]),
                   files=tuple(data["files"]), build=str(data["build"]), flash=str(data["flash"]),
                   path=str(data["path"]), missing_ops=tuple(data.get("missing_ops", ())))

    def unsupported_reason(self, profile: HardwareProfile) -> str | None:
        """Why this template cannot build for ``profile``, or None when it can."""
        core = normalize_core(profile.core)
        if profile.kind not in self.kinds:
            return f"it builds for {', '.join(self.kinds)} devices and profile {profile.id!r} is a {profile.kind}"
        if core not in self.cores:
            return f"it does not support core {profile.core!r} (it supports {', '.join(self.cores)})"
        missing = [f for f in self.requires if not getattr(profile.ecosystem, f, "")]
        if missing:
            return (f"profile {profile.id!r} has no {', '.join('ecosystem.' + f for f in missing)} "
                    f"(add it to {profile.source_path or 'the profile'})")
        return None


def _templates_root() -> Path:
    try:
        return data_dir("firmware_templates")
    except FileNotFoundError as exc:
        raise DeployError(f"{exc}; reinstall tinynas") from None


def _load_manifest(folder: Path) -> FirmwareTemplate:
    path = folder / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeployError(f"{path}: cannot read the template manifest ({exc}); fix the TOML") from None
    str_fields = ("description", "ecosystem", "model_dir", "build", "flash")
    list_fields = ("kinds", "cores", "files")
    for key in str_fields:
        if not isinstance(data.get(key), str) or not data[key]:
            raise DeployError(f"{path}: field {key!r} must be a non-empty string")
    for key in (*list_fields, "requires", "missing_ops"):
        value = data.get(key, None if key in list_fields else [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DeployError(f"{path}: field {key!r} must be a list of strings")
    unknown = [op for op in data.get("missing_ops", []) if op not in TFLM_BUILTIN_OPS]
    if unknown:
        raise DeployError(f"{path}: missing_ops names {', '.join(unknown)}, which TFLite Micro has no kernel for "
                          "anyway; list builtin op names such as BATCH_MATMUL")
    if data.get("name", folder.name) != folder.name:
        raise DeployError(f"{path}: name {data['name']!r} must equal the folder name {folder.name!r}")
    return FirmwareTemplate(
        name=folder.name, description=data["description"], ecosystem=data["ecosystem"],
        kinds=tuple(data["kinds"]), cores=tuple(normalize_core(c) for c in data["cores"]),
        requires=tuple(data.get("requires", [])), model_dir=data["model_dir"],
        model_source_ext=str(data.get("model_source_ext", ".cc")), files=tuple(data["files"]),
        build=data["build"], flash=data["flash"], path=str(folder), missing_ops=tuple(data.get("missing_ops", [])),
    )


def list_templates() -> list[FirmwareTemplate]:
    """Every template folder with a manifest, sorted by name (``tinynas firmware list``)."""
    root = _templates_root()
    return [_load_manifest(p) for p in sorted(root.iterdir()) if (p / MANIFEST).is_file()]


def get_template(name: str) -> FirmwareTemplate:
    """The template called ``name``; DeployError listing the known ones otherwise."""
    for t in list_templates():
        if t.name == name:
            return t
    names = [t.name for t in list_templates()]
    # the ecosystems' own spellings (esp-idf, pico-sdk, PlatformIO) name a template too
    key = re.sub(r"[^a-z0-9]", "", name.lower()).removesuffix("sdk")
    guesses = [n for n in names if key and re.sub(r"[^a-z0-9]", "", n).startswith(key)]
    hint = f": did you mean {guesses[0]!r}? Known" if len(guesses) == 1 else "; known"
    raise DeployError(f"unknown firmware template {name!r}{hint}: {', '.join(names)} (see `tinynas firmware list`)")


def templates_for(profile: HardwareProfile) -> list[str]:
    """Names of the templates that can build for ``profile``."""
    return [t.name for t in list_templates() if t.unsupported_reason(profile) is None]


def check_template(template: FirmwareTemplate, profile: HardwareProfile) -> None:
    """DeployError naming the template, the profile's core and the templates that would work."""
    reason = template.unsupported_reason(profile)
    if reason is None:
        return
    working = templates_for(profile)
    fix = (f"use --template {' or '.join(working)}" if working
           else "no template supports this board yet: add one under firmware_templates/")
    raise DeployError(f"firmware template {template.name!r} cannot build for profile {profile.id!r} "
                      f"(core {profile.core}): {reason}; {fix}")


def check_template_ops(template: FirmwareTemplate, profile: HardwareProfile, op_kinds: Sequence[str], *,
                       used_by: str) -> None:
    """DeployError when ``used_by`` (the model, or every arch of a space) needs an op that the template's
    TFLite Micro library has no kernel for: the project would not compile. Names the templates for the
    board whose library has them."""
    lacking = [op for op in dict.fromkeys(op_kinds) if op in template.missing_ops]
    if not lacking:
        return
    others = [t.name for t in list_templates()
              if t.unsupported_reason(profile) is None and not set(lacking) & set(t.missing_ops)]
    fix = (f"pass --template {' or '.join(others)}, whose library has {'them' if len(lacking) > 1 else 'it'}"
           if others else "no template for this board has it: choose another space or model")
    raise DeployError(f"{used_by} uses {', '.join(lacking)}, which the TFLite Micro library of firmware template "
                      f"{template.name!r} (the revision its project pins) has no kernel for; {fix}")


def check_board_template(profile: HardwareProfile, template: str | None = None, *, op_kinds: Sequence[str] = (),
                         used_by: str = "the model") -> None:
    """DeployError when ``template`` (else the profile's default) does not exist or cannot build for the
    board, or lacks a kernel for one of ``op_kinds`` (what ``used_by`` needs); nothing for a board without
    firmware (phones, GPUs). ``run`` asks before its search and ``profiles validate`` notes it: otherwise a
    misspelt --template or core surfaces at deploy."""
    if template and profile.kind != "mcu":
        raise DeployError(f"--template {template}: {profile.id} is a {profile.kind} board, which gets its runtime's "
                          "models and runners, not a firmware project; drop --template")
    name = template or profile.ecosystem.default_template
    if profile.kind != "mcu" or not name or name == "none":
        return
    chosen = get_template(name)
    check_template(chosen, profile)
    check_template_ops(chosen, profile, op_kinds, used_by=used_by)


def _context(template: FirmwareTemplate, profile: HardwareProfile, *, model_id: str, model_bytes: int,
             arena_bytes: int, class_names: Sequence[str], input_scaling: str | None) -> dict[str, Any]:
    cm = cortex_m(profile)
    eco = profile.ecosystem
    fqbn = eco.arduino_fqbn
    # Arduino_TensorFlowLite serves the Nano 33 BLE (mbed_nano); the Chirale library the other cores
    # (REFERENCE.md section 3). Note the capital L in Chirale's library name.
    arduino_lib = ("Arduino_TensorFlowLite" if fqbn.startswith("arduino:mbed_nano:")
                   else "Chirale_TensorFLowLite")
    lib_url, lib_ref, lib_version = ARDUINO_TFLM_LIBRARIES[arduino_lib]
    ctx: dict[str, Any] = {
        "template": template,
        "profile": profile,
        "eco": eco,
        "baud": profile.serial.baud,
        "project_name": re.sub(r"[^A-Za-z0-9_]", "_", f"tinynas_{profile.id}"),
        "model": {"id": model_id, "bytes": model_bytes, "measured_arena_bytes": arena_bytes,
                  "arena_bytes": arena_size_with_margin(arena_bytes), "class_names": list(class_names),
                  "input_scaling": input_scaling or "", "source_ext": template.model_source_ext,
                  # what model_data.h offers an application to fill the input with (generate_firmware sets them)
                  "quantize_raw": False, "resize_from": ""},
        "cortex_m": cm,
        "timer": cm.timer if cm else "",
        "mcpu": cm.mcpu if cm else "",
        "fpu_flags": cm.fpu_flags if cm else "",
        "tflm_arch": cm.tflm_target_arch if cm else "",
        "arduino_lib": arduino_lib,
        "arduino_lib_git": f"{lib_url}#{lib_ref}",
        "arduino_lib_version": lib_version,
        "arduino_header": "TensorFlowLite.h" if arduino_lib == "Arduino_TensorFlowLite" else "Chirale_TensorFlowLite.h",
        "kernel_library": profile.kernel_library,
        "cmsis_nn": bool(cm) and profile.kernel_library in ("cmsis-nn", "cmsis_nn", "cmsisnn"),
        "model_dir": template.model_dir,
        "memory": {key: (f"0x{value:08X}" if key.endswith("origin") else value)
                   for key, value in profile.memory_map().items()},
        "memory_stated": profile.flash_origin is not None and profile.ram_origin is not None,
        "extra_sources": [],  # C files beside the model sources (generate_firmware's extra_sources)
    }
    env = _env()
    ctx["commands"] = {"build": env.from_string(template.build).render(ctx).strip(),
                       "flash": env.from_string(template.flash).render(ctx).strip()}
    return ctx


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_C_SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hpp", ".ino", ".ld", ".in"}


def one_line(value: Any) -> Any:
    """A string with control characters (line breaks above all) turned into spaces.

    Every value a template writes sits on one line of a comment, a string or a
    command; a line break in a profile's name would end the comment and start code.
    """
    return _CONTROL.sub(" ", value) if isinstance(value, str) else value


def c_comment_safe(value: Any) -> Any:
    """``one_line`` plus nothing that ends a C comment or splices lines: no ``*/``,
    no backslash (line continuation of a // comment), no ``??`` (the ``??/`` trigraph)."""
    if not isinstance(value, str):
        return value
    text = one_line(value).replace("\\", "/").replace("*/", "* /")
    while "??" in text:
        text = text.replace("??", "? ?")
    return text


def _finalizer(target: Path) -> Any:
    """How every ``{{ value }}`` is written into ``target``, by the file's language."""
    if target.suffix in _C_SUFFIXES:
        return c_comment_safe
    return one_line  # CMake, INI, Kconfig, YAML, Markdown: a value must not start a new line


def _env(target: Path | None = None) -> Any:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False, trim_blocks=True, lstrip_blocks=True,
                             finalize=_finalizer(target) if target is not None else one_line)
    env.filters["sh"] = shlex.quote  # a word of a command line that a shell would not split or expand
    env.filters["c_comment"] = c_comment_safe
    return env


def render_commands(template: FirmwareTemplate, profile: HardwareProfile) -> dict[str, str]:
    """The template's build and flash commands with the profile's board ids filled in."""
    ctx = _context(template, profile, model_id="", model_bytes=0, arena_bytes=1, class_names=(),
                   input_scaling=None)
    return dict(ctx["commands"])


def _resize_from(model_bytes: bytes, raw_shape: Sequence[int] | None) -> str:
    """"28x28x1" where model_data.h gets ResizeRawInput (the data's samples are another height and width than
    the model's input), else ""."""
    from tinynas.space.tflite_reader import tflite_info

    if raw_shape is None:
        return ""
    taken = tflite_info(model_bytes).inputs[0].shape[1:]
    return "x".join(str(int(d)) for d in raw_shape) if resizes(raw_shape, taken) else ""


def _op_kinds(model_bytes: bytes) -> tuple[str, ...]:
    from tinynas.space.tflite_reader import tflite_info

    return tflite_info(model_bytes).op_kinds


def _render_tree(template: FirmwareTemplate, ctx: dict[str, Any], dest: Path) -> list[Path]:
    """Copy the template into ``dest``, rendering ``*.j2`` files (suffix dropped); return the rendered paths.
    A template may ``{% include %}`` the partials of ``common/`` (own_application.md.j2)."""
    import jinja2

    rendered = []
    src_root = Path(template.path)
    for src in sorted(src_root.rglob("*")):
        rel = src.relative_to(src_root)
        if src.is_dir() or rel.as_posix() == MANIFEST:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".j2":
            target = target.with_suffix("")
            try:
                env = _env(target)
                env.loader = jinja2.FileSystemLoader(str(_templates_root() / "common"))
                text = env.from_string(src.read_text(encoding="utf-8")).render(ctx)
            except jinja2.TemplateError as exc:
                raise DeployError(f"{src}: the template does not render ({type(exc).__name__}: {exc}); "
                                  "fix the template") from None
            target.write_text(text, encoding="utf-8")
            rendered.append(target)
        else:
            shutil.copyfile(src, target)
    return rendered


def _check_rendered(template: FirmwareTemplate, project: Path, rendered: Sequence[Path]) -> None:
    missing = [f for f in template.files if not (project / f).is_file()]
    if missing:
        raise DeployError(f"template {template.name!r} rendered without {', '.join(missing)}; "
                          f"fix {Path(template.path) / MANIFEST} or the template files")
    for path in rendered:
        if _UNRENDERED.search(path.read_text(encoding="utf-8")):
            raise DeployError(f"template {template.name!r}: {path.relative_to(project)} still holds Jinja markers "
                              "after rendering; fix the template")


def _earlier_files(project: Path) -> list[str]:
    """The files the stamp of an earlier project in ``project`` lists ([] without a readable stamp)."""
    try:
        files = json.loads((project / STAMP).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str)]


def _prepare_out_dir(out_dir: Path) -> bool:
    """True when out_dir holds an earlier project of ours that may be replaced; DeployError for other files."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise DeployError(f"{out_dir} exists and is not a folder; give --out a new folder")
    entries = list(out_dir.iterdir())
    if not entries:
        return False
    if (out_dir / STAMP).is_file() or interrupted_files(out_dir):
        return True  # ours, or ours after an interrupted regenerate (outdir.JOURNAL lists its files)
    raise DeployError(f"{out_dir} already exists with other files in it; give --out a new or empty folder "
                      "(tinynas replaces only folders it generated itself)")


def generate_firmware(
    *,
    template: str | None,
    model_bytes: bytes,
    profile: HardwareProfile,
    out_dir: Path,
    class_names: Sequence[str],
    arena_bytes: int,
    model_id: str,
    input_scaling: str | None = None,
    raw_scaling: tuple[float, float] | None = None,
    raw_shape: Sequence[int] | None = None,
    source: str = "model",
    extra_sources: Sequence[Path] = (),
) -> Path:
    """Render firmware project ``template`` (None: the profile's default) into ``out_dir``; return ``out_dir``.

    ``extra_sources`` (the audio or image front end, ``tinynas.deploy.*_frontend``) are copied beside the model
    sources and their ``.c`` files added to the build (the CMake templates list ``extra_sources``; Arduino and
    PlatformIO compile every source of the folder).

    The project is built in a temporary folder beside ``out_dir`` and renamed into place
    only when complete, so a failure leaves nothing half-written. ``out_dir`` must be new,
    empty, or a project this function generated before (its files are then replaced file by
    file; files the user added, such as a build folder, stay). Raises
    DeployError for a template that cannot build for the profile (naming the ones that can),
    ModelFileError naming ``source`` for bytes that are not a whole int8 ``.tflite`` model
    (a float model would compile with a zero input scale and give nonsense on the board).
    """
    from tinynas.deploy.interpreter import require_int8

    require_int8(model_bytes, source=source)
    name = template or profile.ecosystem.default_template
    if not template and profile.kind not in ("mcu",):
        raise DeployError(f"profile {profile.id!r} is a {profile.kind} device; firmware projects are for "
                          "microcontrollers (kind mcu): deploy the .tflite file with LiteRT there instead")
    if not name or name == "none":
        raise DeployError(f"profile {profile.id!r} names no ecosystem.default_template; pass --template "
                          f"(one of: {', '.join(templates_for(profile)) or 'none fits'})")
    tpl = get_template(name)
    check_template(tpl, profile)
    check_template_ops(tpl, profile, _op_kinds(model_bytes), used_by=source)
    out_dir = Path(out_dir).resolve()
    replace = _prepare_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        ctx = _context(tpl, profile, model_id=model_id, model_bytes=len(model_bytes), arena_bytes=arena_bytes,
                       class_names=class_names, input_scaling=input_scaling)
        ctx["extra_sources"] = [Path(p).name for p in extra_sources if Path(p).suffix == ".c"]
        ctx["model"].update(quantize_raw=raw_scaling is not None, resize_from=_resize_from(model_bytes, raw_shape)
                            if raw_scaling is not None else "")
        rendered = _render_tree(tpl, ctx, tmp)
        model_dir = tmp / tpl.model_dir
        written = write_model_sources(model_bytes=model_bytes, out_dir=model_dir, class_names=class_names,
                                      arena_bytes=arena_bytes, model_id=model_id, input_scaling=input_scaling,
                                      raw_scaling=raw_scaling, raw_shape=raw_shape)
        common = _templates_root() / "common"
        for fname in COMMON_FILES:
            shutil.copyfile(common / fname, model_dir / fname)
        for path in extra_sources:
            shutil.copyfile(path, model_dir / Path(path).name)
        if tpl.model_source_ext != ".cc":
            for path in [*written, *(model_dir / f for f in COMMON_FILES)]:
                if path.suffix == ".cc":
                    path.rename(path.with_suffix(tpl.model_source_ext))
        _check_rendered(tpl, tmp, rendered)
        commands = render_commands(tpl, profile)
        stamp = {"template": tpl.name, "profile": profile.id, "model_id": model_id, "core": profile.core,
                 "build": commands["build"], "flash": commands["flash"], "files": sorted(
                     p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a project folder is not
        if replace:
            # File by file: a build folder or a note the user put into the project stays.
            earlier = _earlier_files(out_dir)
            install_files(staged=tmp, out_dir=out_dir, previous=[*earlier, STAMP], marker=STAMP)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)  # an empty out_dir is replaced atomically
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("firmware project %s for %s (template %s) in %s", model_id, profile.id, tpl.name, out_dir)
    return out_dir


def read_project_info(project: Path) -> dict[str, Any]:
    """What ``generate_firmware`` recorded in a project (template, profile, model id, build and flash commands)."""
    path = Path(project) / STAMP
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: not a project generated by tinynas ({exc}); run `tinynas firmware generate`") from None
