#!/usr/bin/env bash
# One entry point for the repository's set-up and jobs. Every command does its own set-up.
#   ./build.sh quickstart [options]  run the embedded-default job (in-process ranks, no MPI); prints its report.html
#   ./build.sh test                  pack the notebook extension, install the notebook kernel, run every test
#   ./build.sh pack                  build the local package feed artifacts/feed (the library, the gRPC service, the
#                                    notebook extension, the toolkit .NET tool)
#   ./build.sh kernel                install the notebook kernel (dotnet-interactive 1.0.712001) under artifacts/tools
#   ./build.sh notebooks             run every notebook at its committed settings; executed copies and the time each
#                                    took in artifacts/notebooks (times.json)
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

pack() {
  # A new version on every pack: NuGet never refreshes a version it has cached (NuGet/Home#5619).
  local version="0.1.0-dev.$(date +%s)"
  rm -f artifacts/feed/LmToolkit*.nupkg
  dotnet pack src/Toolkit -c Release -o artifacts/feed -p:Version="$version" --nologo -v quiet
  dotnet pack src/Grpc -c Release -o artifacts/feed -p:Version="$version" --nologo -v quiet
  dotnet pack src/Extensions -c Release -o artifacts/feed -p:Version="$version" --nologo -v quiet
  # The CLI as a .NET tool (command `toolkit`, also the rank entry point of MPI jobs).
  dotnet pack src/Cli -c Release -o artifacts/feed -p:Version="$version" --nologo -v quiet
  # Notebooks run from this checkout start this build under mpiexec when no tool is installed.
  dotnet build src/Cli -c Release --nologo -v quiet
  echo "packed LmToolkit, LmToolkit.Grpc, LmToolkit.Interactive and the tool LmToolkit.Cli $version into" \
    "artifacts/feed; built src/Cli"
}

kernel() {
  local tool=artifacts/tools/dotnet-interactive
  if [ ! -x "$tool/dotnet-interactive" ]; then
    dotnet tool install Microsoft.dotnet-interactive --version 1.0.712001 --tool-path "$tool"
  fi
}

case "${1:-}" in
  quickstart)
    shift
    dotnet build src/Cli -c Release --nologo -v quiet
    src/Cli/bin/Release/net10.0/toolkit quickstart "$@"
    ;;
  test)
    shift
    pack
    kernel
    log=$(mktemp)
    set +e
    dotnet test Toolkit.sln -c Release --nologo "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    # One plain closing line over every test assembly.
    awk '/(Passed|Failed)! +- +Failed: /{gsub(",","");f+=$4;p+=$6;s+=$8}
      END{printf "%d passed, %d failed, %d skipped\n",p,f,s}' "$log"
    if grep -q "Test Run Aborted" "$log"; then echo "a test run ABORTED (its host crashed): see above"; fi
    rm -f "$log"
    exit "$status"
    ;;
  pack) pack ;;
  kernel) kernel ;;
  notebooks)
    pack
    kernel
    /usr/bin/python3 build/notebook_times.py artifacts/tools/dotnet-interactive/dotnet-interactive artifacts/notebooks
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
