#!/usr/bin/python3
"""Execute a notebook with the real .NET Interactive kernel through Jupyter (Debian's nbclient).

Usage: run_notebook.py TOOL NOTEBOOK OUTPUT [TIMEOUT_SECONDS]
  TOOL      path of the dotnet-interactive executable (installed with --tool-path)
  NOTEBOOK  the .ipynb to run; its folder is the kernel's working directory
  OUTPUT    where the executed notebook is written

Writes a private kernelspec (absolute tool path, HTTP side server on loopback only) into a
temporary JUPYTER_PATH, runs every cell, and prints one JSON line per code cell:
{"cell": i, "mimes": [...], "errors": [...]}. Exits 1 if any cell produced an error.
"""
import json, os, sys, tempfile

tool, notebook, output = sys.argv[1:4]
timeout = int(sys.argv[4]) if len(sys.argv) > 4 else 900
home = tempfile.mkdtemp(prefix="toolkit-jupyter-")
spec_dir = os.path.join(home, "kernels", "toolkit-csharp")
os.makedirs(spec_dir)
with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
    json.dump({
        "argv": [os.path.abspath(tool), "jupyter", "--default-kernel", "csharp", "{connection_file}",
                 "--http-port-range", "2048-3000", "--http-local-only"],
        "display_name": ".NET (C#)", "language": "C#",
        "env": {"DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_INTERACTIVE_SKIP_FIRST_TIME_EXPERIENCE": "1",
                "DOTNET_CLI_TELEMETRY_OPTOUT": "1"},
    }, f)
for name in ("JUPYTER_PATH", "JUPYTER_DATA_DIR"):
    os.environ[name] = home
os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(home, "runtime")
os.environ["JUPYTER_CONFIG_DIR"] = os.path.join(home, "config")

import nbformat
from nbclient import NotebookClient

# The kernel's ports are picked free by jupyter_client and bound by the kernel a moment later; another process can take
# one in between (the kernel then exits with "Address already in use"). A kernel that never ran a cell is started again.
for attempt in range(3):
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, kernel_name="toolkit-csharp", timeout=timeout, startup_timeout=180, allow_errors=True,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(notebook))}})
    try:
        client.execute()
        break
    except Exception as e:
        if attempt == 2 or any(c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
            raise
        print(f"the kernel did not start ({type(e).__name__}: {e}); starting it again", file=sys.stderr)
nbformat.write(nb, output)
failed = False
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    mimes, errors = [], []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            errors.append(out.get("ename", "") + ": " + out.get("evalue", ""))
        mimes.extend(out.get("data", {}).keys())
    failed = failed or bool(errors)
    print(json.dumps({"cell": i, "mimes": mimes, "errors": errors}))
sys.exit(1 if failed else 0)
