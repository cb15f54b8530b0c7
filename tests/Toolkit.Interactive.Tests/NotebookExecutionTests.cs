using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;

namespace Toolkit.Interactive.Tests;

/// <summary>
/// The notebooks, executed by the real kernel (the dotnet-interactive tool, through Jupyter with Debian's nbclient),
/// loading the extension from the repository's package feed as a user would. <c>./build.sh test</c> builds the feed and
/// installs the tool first.
/// </summary>
public sealed class NotebookExecutionTests
{
    private static readonly string Root = FindRoot();
    private static readonly string Feed = Path.Combine(Root, "artifacts", "feed");
    private static readonly string Tool = Path.Combine(Root, "artifacts", "tools", "dotnet-interactive",
        "dotnet-interactive");
    /// <summary>Where each executed notebook, its HTML, a screenshot and its running time are kept for a
    /// reviewer.</summary>
    private static readonly string Kept = Path.Combine(Root, "artifacts", "test-output", "notebooks");

    [Fact]
    public void Package_CarriesTheExtensionWhereTheKernelLooks()
    {
        using var package = ZipFile.OpenRead(ExtensionPackage());
        var entries = package.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("interactive-extensions/dotnet/Toolkit.Interactive.dll", entries);
        Assert.Contains("lib/net10.0/Toolkit.Interactive.dll", entries);
        Assert.DoesNotContain(entries, e => e.StartsWith("interactive-extensions/dotnet/",
            StringComparison.Ordinal) && !e.EndsWith("Toolkit.Interactive.dll", StringComparison.Ordinal));
    }

    [Fact]
    public void Quickstart_RunsInTheRealKernel_WithChartsAndNoErrors()
    {
        var cells = Execute("00-quickstart.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var code = cells.Select(c => c.Html).ToList();
        Assert.Contains(code, html => html.Any(h => h.Contains("Toolkit extension loaded")));
        Assert.Contains(code,
            html => html.Any(h => h.Contains("TorchSharp")) && html.Any(h
                => h.Contains("Plotly.newPlot")));       // #!toolkit info
        Assert.Contains(code,
            html => html.Any(h => h.Contains("Quickstart run")) && html.Any(h
                => h.Contains("Plotly.newPlot")));  // live job
        Assert.True(code[^1].Any(h => h.Contains("Plotly.newPlot") && h.Contains("reloaded from its folder")),
            "the C# API cell must end with the reloaded chart");
    }

    [Fact]
    public void Paro_RunsInTheRealKernel_PlansTablesAndMeasuredComparison()
    {
        var cells = Execute("01-paro.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        Assert.Contains(all, h => h.Contains("recommended: "));                                      // #!paro plan
        // memory vs device limit
        Assert.Contains(all, h => h.Contains("device memory") && h.Contains("Plotly.newPlot"));
        Assert.Contains(all, h => h.Contains("Measured bytes sent per rank per step"));              // #!paro compare
        Assert.Contains(all, h => h.Contains("PaRO NIG"));                                           // #!paro train
        // memory table from the C# API
        Assert.Contains(all, h => h.Contains("PeftGiB"));
    }

    [Fact]
    public void Collectives_RunsInTheRealKernel_SimulatorAndMeasurements()
    {
        var cells = Execute("02-collectives.ipynb", writesRuns: false);
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        Assert.Contains(all,
            h => h.Contains("Predicted bus bandwidth against message size") && h.Contains("Plotly.newPlot"));
        Assert.Contains(all, h => h.Contains("Predicted bus bandwidth against GPUs"));
        Assert.Contains(all, h => h.Contains("SpeedupAuthors"));
        Assert.Contains(all, h => h.Contains("Measured on 4 in-process ranks"));
    }

    [Fact]
    public void IcePop_RunsInTheRealKernel_ComparingCorrectionsAndNumerics()
    {
        var cells = Execute("03-icepop.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        foreach (var correction in new[] { "none", "tis", "icepop" })
            // #!rl train --compare: one result table per run
            Assert.Contains(all, h => h.Contains($"RL addition, {correction}, int8 rollouts"));
        // live charts
        Assert.Contains(all, h => h.Contains("tokens masked or truncated by the correction") &&
            h.Contains("Plotly.newPlot"));
        // the numerics dial from the C# API, ordered by its mismatch
        Assert.Contains(all, h => h.Contains("KlInferTrain") && h.Contains("Int8"));
        Assert.Contains(all, h => h.Contains("Ordered by mean |Δ log p|: Fp32 < Fp16 < Bf16 < Int8 < Fp8."));
        // MoE routing flips, engine vs trainer
        Assert.Contains(all, h => h.Contains("Routing flips per layer") && h.Contains("Plotly.newPlot"));
        // #!rl icepop: the verdicts, then one chart per diagnostic with a line per correction
        Assert.Contains(all, h => h.Contains("IcePop experiment: fp8 rollouts, 1 seed") && h.Contains("degraded in"));
        Assert.Contains(all, h => h.Contains("mean over seeds, one line per correction") &&
            h.Contains("Plotly.newPlot"));
    }

    [Fact]
    public void C3po_RunsInTheRealKernel_SynchronousAgainstBudgeted()
    {
        var cells = Execute("04-c3po.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        Assert.Contains(all, h => h.Contains("TokensPerSecond") && h.Contains("c3po++"));
        Assert.Contains(all, h => h.Contains("Rollouts per step, synchronous against C3PO++") &&
            h.Contains("Plotly.newPlot"));
        Assert.Contains(all, h => h.Contains("Trained responses by staleness"));
        Assert.Contains(all, h => h.Contains("RL longtail, icepop, fp32 rollouts"));
    }

    [Fact]
    public void BatchInference_RunsInTheRealKernel_LiveChartsExactlyOnceAndResume()
    {
        var cells = Execute("05-batch-inference.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        // #!infer run result table
        Assert.Contains(all, h => h.Contains("batch inference infer-") && h.Contains("completed"));
        // live charts
        Assert.Contains(all, h => h.Contains("busy fraction per stage") && h.Contains("Plotly.newPlot"));
        // two worker processes
        Assert.Contains(all, h => h.Contains("2 started, 0 died"));
        // read back from C#
        Assert.Contains(all, h => h.Contains("ExactlyOnce") && h.Contains("True"));
        // quarantine reasons
        Assert.Contains(all, h => h.Contains("empty line"));
        // a worker process killed mid-shard, the output still exactly once
        Assert.Contains(all, h => h.Contains(" started, 1 died"));
        Assert.Contains(all, h => h.Contains("A worker killed mid-shard") && h.Contains("<td>True</td>"));
        // stop, then resume
        Assert.Contains(all, h => h.Contains("cancelled: ") && h.Contains("completed: "));
    }

    [Fact]
    public void RealModels_RunsInTheRealKernel_FromInitToExport()
    {
        var cells = Execute("06-real-models.ipynb");
        Assert.All(cells, c => Assert.Empty(c.Errors));
        var all = cells.SelectMany(c => c.Html).ToList();
        // #!model init's table
        Assert.Contains(all, h => h.Contains("Hugging Face folder") && h.Contains("llama") && h.Contains("4 / 2 / 16"));
        // layer-wise training
        Assert.Contains(all, h => h.Contains("PaRO GGG") && h.Contains("loss"));
        // greedy continuations
        Assert.Contains(all, h => h.Contains("PromptTokens") && h.Contains("Continuation"));
        // RL on the folder
        Assert.Contains(all, h => h.Contains("RL addition, icepop, bf16 rollouts"));
        // batch scoring
        Assert.Contains(all, h => h.Contains("batch inference infer-") && h.Contains("completed"));
        // export read back
        Assert.Contains(all, h => h.Contains("BitIdentical") && h.Contains("<td>True</td>"));
    }

    /// <summary>
    /// The notebook runner starts the kernel again when it dies before running a cell (as it does when another process
    /// takes one of its ports first): a kernel that fails its first start still runs the notebook.
    /// </summary>
    [Fact]
    public async Task Runner_StartsTheKernelAgain_WhenItDiesBeforeTheFirstCell()
    {
        Assert.True(File.Exists(Tool), $"The notebook kernel is not installed at {Tool}: run ./build.sh kernel.");
        var work = Directory.CreateTempSubdirectory("toolkit-runner-");
        try
        {
            var mark = Path.Combine(work.FullName, "started-once");
            var flaky = Path.Combine(work.FullName, "flaky-kernel");
            File.WriteAllText(flaky, $"#!/bin/sh\nif [ ! -e '{mark}' ]; then touch '{mark}'; " +
                $"echo 'Address already in use' >&2; exit 1; fi\nexec '{Tool}' \"$@\"\n");
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(flaky, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var notebook = Path.Combine(work.FullName, "one-cell.ipynb");
            File.WriteAllText(notebook, """
                {"cells": [{"cell_type": "code", "execution_count": null, "id": "a", "metadata": {}, "outputs": [],
                  "source": "1 + 1"}],
                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
                """);
            var output = Path.Combine(work.FullName, "out.ipynb");
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true,
                RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(Root, "build", "run_notebook.py"), flaky, notebook, output, "300" })
                start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            var (stdout, stderr) = (process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{await stdout}\n{await stderr}");
            Assert.Contains("starting it again", await stderr);
            Assert.True(File.Exists(mark));
            Assert.Contains("\"mimes\"", await stdout);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static List<CellOutputs> Execute(string notebook, bool writesRuns = true)
    {
        ExtensionPackage();
        Assert.True(File.Exists(Tool),
            $"The notebook kernel is not installed at {Tool}: run ./build.sh kernel (./build.sh test does it).");
        var work = Directory.CreateTempSubdirectory("toolkit-notebook-");
        try
        {
            var output = Path.Combine(work.FullName, notebook);
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true,
                RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(Root, "build", "run_notebook.py"), Tool, Path.Combine(Root,
                "notebooks", notebook), output, "900" })
                start.ArgumentList.Add(a);
            start.Environment["TOOLKIT_RUNS_DIR"] = Path.Combine(work.FullName, "runs");
            start.Environment.Remove("TOOLKIT_CLI");   // the notebooks name the checkout's build themselves
            start.Environment["TOOLKIT_NOTEBOOK_SIZE"] = "small";   // the committed sizes, capped (NotebookSize)
            var clock = Stopwatch.StartNew();
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(15)), "the notebook did not finish in 15 minutes");
            Assert.True(File.Exists(output),
                $"no executed notebook was written; exit {process.ExitCode}\n{stdout}\n{stderr.Result}");
            var seconds = clock.Elapsed.TotalSeconds;
            if (writesRuns) Assert.True(Directory.Exists(Path.Combine(work.FullName, "runs")),
                "the notebook's jobs did not write to TOOLKIT_RUNS_DIR");
            var cells = ReadOutputs(output);
            AssertChartsWorkOffline(cells);
            // results that are rows display as tables, not as the kernel's collapsed object views
            Assert.DoesNotContain(cells.SelectMany(c => c.Html), h => h.Contains("dni-treeview",
                StringComparison.Ordinal));
            OpenInBrowser(output, seconds);
            return cells;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>
    /// No chart output loads anything from the internet (require.js or plotly.js from a CDN): plotly.js arrives once,
    /// with the extension, from the package, and every chart draws with that copy. (The kernel's own first output, its
    /// JavaScript bootstrapper, is not ours and not checked.)
    /// </summary>
    private static void AssertChartsWorkOffline(List<CellOutputs> cells)
    {
        var outputs = cells.SelectMany(c => c.Html).ToList();
        var loader = Assert.Single(outputs, h => h.Contains("plotly.js loaded from LmToolkit.Interactive",
            StringComparison.Ordinal));
        // inline (plotly.js itself names a CDN only as the default of geo charts' topojsonURL)
        Assert.DoesNotContain("src=\"http", loader, StringComparison.Ordinal);
        foreach (var external in new[] { "cdn.plot.ly", "cdnjs.cloudflare.com", "require.config", "src=\"http" })
            Assert.DoesNotContain(outputs, h => h != loader && h.Contains("Plotly",
                StringComparison.Ordinal) && h.Contains(external, StringComparison.Ordinal));
        Assert.All(outputs.Where(h => h.Contains("Plotly.newPlot", StringComparison.Ordinal)),
            h => Assert.Contains("window.Plotly", h));
    }

    /// <summary>
    /// The executed notebook as a reader opens it: rendered to HTML (nbconvert), opened in headless Chromium with no
    /// network, every chart drawn with data and titled in words; the notebook, its HTML, a screenshot and the running
    /// time are kept under <c>artifacts/test-output/notebooks</c>.
    /// </summary>
    private static void OpenInBrowser(string executed, double seconds)
    {
        var name = Path.GetFileNameWithoutExtension(executed);
        Directory.CreateDirectory(Kept);
        var notebook = Path.Combine(Kept, name + ".ipynb");
        File.Copy(executed, notebook, overwrite: true);
        var (exit, log) = Toolkit.Tests.Support.Repository.Run("/usr/bin/python3",
            ["-m", "nbconvert", "--to", "html", notebook, "--output-dir", Kept], TimeSpan.FromMinutes(2));
        Assert.True(exit == 0, $"nbconvert failed on {name}:\n{log}");
        var page = Toolkit.Tests.Support.HeadlessBrowser.Open(Path.Combine(Kept, name + ".html"),
            Path.Combine(Kept, name + ".png"));
        page.AssertReadable(name);
        File.WriteAllText(Path.Combine(Kept, name + ".json"), JsonSerializer.Serialize(new { notebook = name,
            seconds = Math.Round(seconds, 1), charts = page.Charts.Count, titles = page.Charts.Select(c => c.Title) }));
    }

    private static List<CellOutputs> ReadOutputs(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var result = new List<CellOutputs>();
        foreach (var cell in document.RootElement.GetProperty("cells").EnumerateArray().Where(c
            => c.GetProperty("cell_type").GetString() == "code"))
        {
            var html = new List<string>();
            var errors = new List<string>();
            foreach (var output in cell.GetProperty("outputs").EnumerateArray())
            {
                if (output.GetProperty("output_type").GetString() == "error")
                    errors.Add(
                        $"{output.GetProperty("ename").GetString()}: {output.GetProperty("evalue").GetString()}");
                if (output.TryGetProperty("data", out var data))
                    foreach (var mime in new[] { "text/html", "text/markdown", "text/plain" })
                        if (data.TryGetProperty(mime, out var value))
                            html.Add(value.ValueKind == JsonValueKind.Array
                                ? string.Concat(value.EnumerateArray().Select(v
                                    => v.GetString())) : value.GetString() ?? "");
            }
            result.Add(new CellOutputs(html, errors));
        }
        return result;
    }

    private static string ExtensionPackage()
    {
        var package = Directory.Exists(Feed) ? Directory.GetFiles(Feed,
            "LmToolkit.Interactive.*.nupkg").OrderDescending().FirstOrDefault() : null;
        Assert.True(package is not null,
            $"No LmToolkit.Interactive package in {Feed}: run ./build.sh pack (./build.sh test does it).");
        return package!;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Toolkit.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Toolkit.sln not found above the test assembly.");
    }

    private sealed record CellOutputs(List<string> Html, List<string> Errors);
}
