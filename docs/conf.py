"""Sphinx configuration of the INK Hub documentation (Sphinx + MyST markdown).

    .venv/bin/python -m sphinx -W -b html docs docs/_build/html

The configuration reference (``reference/config.md``) is generated here at build time from the
traitlets of :class:`InkSpawner`, :class:`LocalBackend`, :class:`SlurmBackend` and
:class:`HTCondorBackend`, so that the documented names, types, defaults and help texts are always
those of the code. The build needs no network access: no intersphinx, no theme outside Sphinx's
own dependencies. It does not need the htcondor bindings either: the HTCondor backend imports
them only when it talks to a schedd.
"""

from __future__ import annotations

import ast
import inspect
import io
import sys
import textwrap
import tokenize
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # document the checkout being built, installed or not

# ---- project ---------------------------------------------------------------------------------

project = "INK Hub"
author = "the INK Hub contributors"
copyright = "the INK Hub contributors"
release = version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
language = "en"

myst_heading_anchors = 3  # [text](page.md#a-heading) links
myst_enable_extensions = ["deflist"]  # part of myst-parser itself

html_theme = "alabaster"
html_title = f"INK Hub {release}"
html_theme_options = {
    "description": "JupyterHub on a HEP batch cluster",
    "fixed_sidebar": True,
}

# ---- the generated configuration reference ---------------------------------------------------

CONFIG_PAGE = DOCS / "reference" / "config.md"


def _documented_classes():
    """(class, include inherited traits?) in page order."""
    from ink_spawner.backends.htcondor import HTCondorBackend
    from ink_spawner.backends.local import LocalBackend
    from ink_spawner.backends.slurm import SlurmBackend
    from ink_spawner.resolver import DefaultResolver
    from ink_spawner.spawner import InkSpawner
    from ink_spawner.walltime import WalltimeExtension

    from ink_files_ext.app import InkFilesApp
    from ink_files_ext.jobs.app import InkJobsApp
    from ink_hub.authenticators import InkAuthenticator, InkOIDCAuthenticator, KerberosAuthenticator
    from ink_hub.doctor import Doctor
    from ink_hub.kerberos import TicketKeeper
    from ink_hub.ssh_api import SessionSSH
    from ink_hub.ssh_ca import SSHCertificateAuthority, SSHHostCertificateAuthority
    from ink_hub.service_plugins import InkServices

    # InkSpawner: its own options and the Spawner options it gives another default; the rest
    # of JupyterHub's Spawner options are JupyterHub's to document. Backends: every option,
    # because each backend is configured through its own class name. Authenticators: their own
    # options (oauthenticator and JupyterHub document the ones they inherit).
    return [(InkSpawner, False), (DefaultResolver, False), (WalltimeExtension, False),
            (LocalBackend, True), (SlurmBackend, True), (HTCondorBackend, True),
            (InkAuthenticator, False), (InkOIDCAuthenticator, False), (KerberosAuthenticator, False),
            (TicketKeeper, False), (InkFilesApp, False), (InkJobsApp, False),
            (SSHCertificateAuthority, False), (SSHHostCertificateAuthority, False), (SessionSSH, False),
            (InkServices, False), (Doctor, False)]


# how a class other than InkSpawner and the backends comes into play
SELECTED = {
    "InkAuthenticator": "The base of INK's authenticators below: its options apply to both "
    "(`c.InkAuthenticator.<option>`), or to one of them under its own name.",
    "InkOIDCAuthenticator": "Selected with `c.JupyterHub.authenticator_class = \"ink-oidc\"` "
    "(see [Single sign-on with OpenID Connect](../admin/sso.md)).",
    "KerberosAuthenticator": "Selected with `c.JupyterHub.authenticator_class = \"ink-kerberos\"` "
    "(see [Kerberos tickets](../admin/kerberos.md)).",
    "DefaultResolver": "InkSpawner's resolver when no site catalogue is configured (a bare "
    "`c.JupyterHub.spawner_class = \"ink\"`): one profile with these defaults, limits and "
    "routing, checked by the one validator (`ink_spawner.validator`). An INK hub "
    "(`ink_hub.config.configure`) uses the catalogue's resolver instead, so these have no effect there.",
    "WalltimeExtension": "Each session's activity-aware wall-time rule; off unless `extend_by` is "
    "set. `ink_hub.config.configure` sets it from the catalogue's `site.walltime_extension`.",
    "InkFilesApp": "The jupyter-server extension `ink_files_ext` in every user server (file "
    "manager, EShell, share links). Configured in the user server's Jupyter config "
    "(`c.InkFilesApp.<option>`); the hub passes the catalogue's values through the environment "
    "named in each option.",
    "InkJobsApp": "The jupyter-server extension `ink_files_ext.jobs` (the job API), served by the "
    "portal server (`c.InkJobsApp.<option>` in the user server's Jupyter config).",
    "InkServices": "Settings of the service plugins the catalogue's experiments list "
    "(see [Adding a service](../developer/adding-a-service.md)).",
    "Doctor": "Read by `ink-hub doctor` from the `hub:` section; its command-line options "
    "override them (see [Installing](../admin/install.md#checking-a-site-ink-hub-doctor)).",
    "TicketKeeper": "Always active; it has work only for users with a Kerberos ticket in their "
    "auth_state (see [Kerberos tickets](../admin/kerberos.md)).",
    "SSHCertificateAuthority": "Always active: it signs EShell's certificates for the login nodes "
    "(see [Portal server and EShell](../admin/eshell.md)) and laptops' keys for SSH into sessions "
    "(see [SSH into sessions](../admin/enode.md)).",
    "SSHHostCertificateAuthority": "Always active: it signs the sessions' host keys for SSH into "
    "sessions (see [SSH into sessions](../admin/enode.md)).",
    "SessionSSH": "Always active (see [SSH into sessions](../admin/enode.md)).",
}


def _default_generator(cls, name, trait):
    """(function, defining class) of a dynamic default (@default), or None for a static one."""
    generator = getattr(cls, "_all_trait_default_generators", {}).get(name)
    if generator is None or generator == trait.default:
        return None
    func = getattr(generator, "func", generator)  # @default handler or old-style _x_default
    owner = getattr(generator, "this_class", None)
    if owner is None:
        owner = next((c for c in cls.__mro__ if func in vars(c).values()), cls)
    return func, owner


def _code(text: str) -> str:
    """Inline code that survives backticks inside the text."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _static_default(trait) -> str:
    value = trait.default_value
    if callable(value) and hasattr(value, "__qualname__"):
        return _code(f"{value.__module__}.{value.__qualname__}")
    return _code(trait.default_value_repr())


def _dynamic_default(func) -> tuple[str, str]:
    """(default as markdown, why) from the source of a default generator.

    A generator that returns a literal is shown as that value; one that computes its value when
    the hub starts (paths of the hub's environment, the hub's uid) is shown as its expression,
    because the value on the machine that builds the docs would mislead.
    """
    source = textwrap.dedent(inspect.getsource(func))
    function = ast.parse(source).body[0]
    body = [
        statement for statement in function.body
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
    ]
    if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
        try:
            default = _code(repr(ast.literal_eval(body[0].value)))
        except ValueError:
            default = "computed when the hub starts: " + _code(
                " ".join(ast.get_source_segment(source, body[0].value).split())
            )
    else:
        default = f"computed when the hub starts (see {_code(func.__qualname__)})"
    comments = [
        token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    why = " ".join(filter(None, [ast.get_docstring(function) or "", *comments]))
    return default, why


def _type_name(trait) -> str:
    name = type(trait).__name__
    for attribute in ("_trait", "_value_trait"):
        inner = getattr(trait, attribute, None)
        if inner is not None:
            return f"{name}({type(inner).__name__})"
    return name


def _help_markdown(text: str) -> str:
    """A trait's help as MyST: backticks stay code; '<x>' must not become raw HTML."""
    lines = []
    for line in inspect.cleandoc(text or "(no help text)").splitlines():
        line = line.replace("<", "\\<")
        if line.lstrip().startswith(("#", ":")):  # not a heading, not a definition
            line = "\\" + line.lstrip()
        lines.append(line)
    return "\n".join(lines)


def _trait_entry(cls, name, trait) -> list[str]:
    label = f"config-{cls.__name__}-{name}".lower()
    defined_on = trait.this_class
    dynamic = _default_generator(cls, name, trait)
    why = ""
    if dynamic is not None:
        default, why = _dynamic_default(dynamic[0])
    else:
        default = _static_default(trait)
    lines = [
        f"({label})=",
        f"### {cls.__name__}.{name}",
        "",
        f"- **Set with:** {_code(f'c.{cls.__name__}.{name}')}",
        f"- **Type:** {_code(_type_name(trait))}",
        f"- **Default:** {default}",
    ]
    if defined_on is not cls:
        origin = f"{defined_on.__module__}.{defined_on.__qualname__}"
        if dynamic is not None and dynamic[1] is cls:
            base_default = _base_default(defined_on, name, trait)
            if base_default == default:
                change = f"{cls.__name__} sets the same default itself"
            else:
                change = f"{cls.__name__} changes its default (default there: {base_default})"
            lines.append(f"- **Defined on:** {_code(origin)}; {change}")
        else:
            lines.append(f"- **Defined on:** {_code(origin)}")
    lines += ["", _help_markdown(trait.help)]
    if why:
        lines += ["", f"Why this default: {why[0].upper()}{why[1:]}" + ("" if why.endswith(".") else ".")]
    return lines + [""]


def _base_default(owner, name, trait) -> str:
    dynamic = _default_generator(owner, name, trait)
    return _dynamic_default(dynamic[0])[0] if dynamic else _static_default(trait)


def _documented_traits(cls, inherited: bool) -> dict:
    if inherited:
        traits = cls.class_traits(config=True)
    else:
        traits = dict(cls.class_own_traits(config=True))
        for name, trait in cls.class_traits(config=True).items():
            dynamic = _default_generator(cls, name, trait)
            if dynamic is not None and dynamic[1] is cls:
                traits[name] = trait  # an inherited option whose default this class sets
    return dict(sorted(traits.items()))


def config_reference() -> str:
    """The whole configuration reference page as MyST markdown."""
    out = [
        "% Generated by docs/conf.py from the traitlets of the classes below. Do not edit:",
        "% change the trait's help= in the code instead.",
        "",
        "# Configuration reference",
        "",
        "Every option below is a traitlet of the class it names. A site sets it in the `hub:` "
        "section of its YAML files (named by `INK_HUB_SITE`, see "
        "[The site catalogue](../admin/catalogue.md#the-hub-section)) as "
        "`hub: {<Class>: {<option>: value}}`, which is `c.<Class>.<option> = value` in a "
        "Python config file. This page is generated from the code when the documentation is "
        "built, so it always matches the version it was built from.",
        "",
        "Defaults that are computed when the hub starts (paths of the hub's Python environment, "
        "whether the hub runs as root) are shown as the expression that computes them.",
        "",
    ]
    for cls, inherited in _documented_classes():
        summary = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
        out += [f"## {cls.__name__}", "", f"{_code(cls.__module__ + '.' + cls.__qualname__)}: {summary}", ""]
        backend_name = getattr(cls, "name", None)
        if inherited and isinstance(backend_name, str):
            out += [f"Selected with `c.InkSpawner.backend = \"{backend_name}\"`.", ""]
        elif cls.__name__ in SELECTED:
            out += [SELECTED[cls.__name__], ""]
        elif not inherited:
            out += [
                "Selected by `ink_hub.config.configure` (`c.JupyterHub.spawner_class = \"ink\"`). "
                "Listed here: the options InkSpawner defines, and the options of JupyterHub's "
                "`Spawner` whose default InkSpawner changes. The other `Spawner` options "
                "(`environment`, `args`, `http_timeout`, hooks, ...) work as JupyterHub documents them.",
                "",
                "`ink_hub.config.configure` sets `resolver` and `apps` from the "
                "[site catalogue](../admin/catalogue.md). Without a catalogue the resolver is "
                "`DefaultResolver` (below).",
                "",
            ]
        for name, trait in _documented_traits(cls, inherited).items():
            out += _trait_entry(cls, name, trait)
    return "\n".join(out).rstrip() + "\n"


def write_config_reference(app=None) -> Path:
    """Write reference/config.md if its content changed (an unchanged file is not rebuilt)."""
    text = config_reference()
    CONFIG_PAGE.parent.mkdir(exist_ok=True)
    if not CONFIG_PAGE.exists() or CONFIG_PAGE.read_text() != text:
        CONFIG_PAGE.write_text(text)
    return CONFIG_PAGE


def setup(app):
    app.connect("builder-inited", write_config_reference)
