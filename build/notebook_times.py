#!/usr/bin/python3
"""Run every notebook at its committed settings (as a person runs it) with the real kernel and time it.

Usage: notebook_times.py TOOL OUTPUT_DIR
Writes OUTPUT_DIR/<name>.ipynb (executed) and OUTPUT_DIR/times.json: per notebook its wall seconds and errors,
with the machine and date. TOOLKIT_NOTEBOOK_SIZE is removed, so nothing is shrunk.
"""
import datetime, glob, json, os, platform, subprocess, sys, time

tool, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))
notebooks = os.path.join(os.path.dirname(here), "notebooks")
os.makedirs(out, exist_ok=True)
env = {k: v for k, v in os.environ.items() if k != "TOOLKIT_NOTEBOOK_SIZE"}
rows = []
for path in sorted(glob.glob(os.path.join(notebooks, "*.ipynb"))):
    name = os.path.splitext(os.path.basename(path))[0]
    start = time.monotonic()
    run = subprocess.run(["/usr/bin/python3", os.path.join(here, "run_notebook.py"), tool, path,
                          os.path.join(out, name + ".ipynb"), "900"], env=env, cwd=notebooks,
                         capture_output=True, text=True)
    seconds = round(time.monotonic() - start, 1)
    errors = [e for line in run.stdout.splitlines() if line.startswith("{")
              for e in json.loads(line).get("errors", [])]
    rows.append({"notebook": name, "seconds": seconds, "exitCode": run.returncode, "errors": errors})
    print(f"{name}: {seconds} s{'' if run.returncode == 0 else ', FAILED: ' + '; '.join(errors)[:300]}", flush=True)
json.dump({"date": datetime.date.today().isoformat(), "machine": f"{platform.system()} {platform.machine()}, "
           f"{os.cpu_count()} cores", "notebooks": rows}, open(os.path.join(out, "times.json"), "w"), indent=1)
sys.exit(1 if any(r["exitCode"] for r in rows) else 0)
