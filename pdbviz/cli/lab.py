"""``pdbviz lab``: JupyterLab on a copy of the teaching notebooks."""

from __future__ import annotations

import sys
from pathlib import Path

from .._notebooks import NOTEBOOKS_FOLDER
from .common import positive_int


def _cmd_lab(args) -> int:
    import importlib.util
    import os
    import secrets

    if importlib.util.find_spec("jupyterlab") is None:
        raise FileNotFoundError("JupyterLab is not installed in this environment; install it with: "
                                "pip install jupyterlab")
    token = args.token if args.token is not None else secrets.token_hex(24)
    from .._notebooks import copy_notebooks, packaged_notebooks

    source = packaged_notebooks()
    folder = Path(args.dir) if args.dir else Path.cwd() / NOTEBOOKS_FOLDER
    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(f"--dir {folder} is not a folder")
    import pdbviz

    if folder.resolve() == source.resolve() and source.parent == Path(pdbviz.__file__).resolve().parent:
        raise ValueError(f"--dir {folder} is the installed package's own notebooks folder, which pdbviz lab never "
                         "changes; give a folder of your own")
    try:
        copied, kept = copy_notebooks(source, folder, dry_run=args.dry_run)
    except OSError as err:  # not writable, or under a file
        raise ValueError(f"cannot write the notebooks into {folder} ({err.strerror or err}); choose another "
                         "folder with --dir") from None
    verb = "would copy" if args.dry_run else "copied"
    print(f"{verb} {len(copied)} notebook(s) into {folder}" + (f"; kept {len(kept)} already there" if kept else ""),
          flush=True)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.ip={args.ip}", f"--ServerApp.port={args.port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder.resolve() if folder.exists() else folder}"]
    if args.no_browser:
        cmd.append("--no-browser")
    if os.geteuid() == 0 if hasattr(os, "geteuid") else False:
        cmd.append("--allow-root")
    print(f"JupyterLab on http://{args.ip}:{args.port}/lab?token={token}  (folder {folder})", flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover - execv does not return


def add_parsers(sub) -> None:
    """The ``lab`` command."""
    lab = sub.add_parser("lab", help="JupyterLab on a copy of the teaching notebooks (127.0.0.1, token on)",
                         description="Copy the teaching notebooks that came with pdbviz into a folder of yours "
                                     f"(default ./{NOTEBOOKS_FOLDER}; notebooks already there are kept as they are) "
                                     "and start JupyterLab there, bound to 127.0.0.1 with a token. The installed "
                                     "notebooks are never changed.")
    lab.add_argument("--port", type=positive_int, default=8888, help="port to serve on (default %(default)s)")
    lab.add_argument("--ip", default="127.0.0.1", help="address to bind (default %(default)s, this machine only)")
    lab.add_argument("--token", default=None, help="access token (default: a random one)")
    lab.add_argument("--dir", default=None,
                     help=f"folder to copy the notebooks into and open (default ./{NOTEBOOKS_FOLDER})")
    lab.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab.add_argument("--dry-run", action="store_true",
                     help="say what would be copied and print the command, without writing or running anything")
    lab.set_defaults(func=_cmd_lab)
