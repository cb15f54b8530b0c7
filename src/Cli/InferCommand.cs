using System.CommandLine;
using System.Globalization;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.Cli;

/// <summary><c>toolkit infer</c>: elastic batch inference (run, resume, status, verify, and the worker entry
/// point).</summary>
internal static class InferCommand
{
    public static Command Create() => new(ChildCommands.InferRun[0],
        "Elastic batch inference: every record's output exactly once, resumable, pipelined, across processes and " +
            "machines.")
    {
        Run(), Resume(), Retry(), Status(), Verify(), Worker(), Chaos(), Kubernetes(),
    };

    private static Command Run()
    {
        var spec = new Option<FileInfo?>("--spec") { Description
            = "A job spec (JSON: the same names as the options, camelCase); options given on the command line " +
                "override it." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the final summary as JSON to this file." };
        var command = new Command(ChildCommands.InferRun[^1],
            "Run a batch-inference job: a coordinator with its state in the job folder, and workers (child processes " +
                "by default).") { spec, json };
        var options = new CliOptions<InferJobOptions>(command, new(), "infer run");
        command.SetAction(async (parse, cancel) =>
        {
            var defaults = parse.GetValue(spec) is { } file ? OptionBinder.ReadConfig<InferJobOptions>(file.FullName,
                InferJobOptions.MigrateJson) : new InferJobOptions();
            var o = options.Bind(parse, defaults);
            var result = await InferJob.RunAsync(o, Display(), cancel, Console.Error.WriteLine);
            return Finish(result, parse.GetValue(json));
        });
        return command;
    }

    private static Command Resume()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "The job folder (runs/infer-...)." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the final summary as JSON to this file." };
        var command = new Command(ChildCommands.InferResume[^1],
            "Resume a stopped or killed job where it stopped: committed shards are not redone. Options given change " +
                "the saved spec (workers, replicas, launcher...).") { folder, json };
        var options = new CliOptions<InferJobOptions>(command, new(), "infer resume");
        command.SetAction(async (parse, cancel) =>
        {
            var dir = parse.GetValue(folder)!.FullName;
            var saved = InferJob.ReadSpec(dir);
            var o = options.Bind(parse, saved);
            if (!o.SameLayout(saved))
                throw new OptionException(
                    "--input, --format and --shard-size cannot change when a job resumes: its shards are already " +
                        "laid out");
            var result = await InferJob.ResumeAsync(dir, Display(), cancel, _ => o, Console.Error.WriteLine);
            return Finish(result, parse.GetValue(json));
        });
        return command;
    }

    private static Command Retry()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "The job folder (runs/infer-...)." };
        var failed = new Option<bool>("--failed") { Description = "Redo the shards that failed past --retries." };
        var quarantined = new Option<bool>("--quarantined") { Description
            = "Redo the shards that quarantined records (whole: their other records too)." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the final summary as JSON to this file." };
        var command = new Command("retry", "Put a stopped job's failed shards and/or quarantined records back to " +
            "work and resume it; every record stays in the output exactly once.") { folder, failed, quarantined, json };
        command.SetAction(async (parse, cancel) =>
        {
            if (!parse.GetValue(failed) && !parse.GetValue(quarantined))
                throw new OptionException("say what to retry: --failed, --quarantined or both");
            var result = await InferJob.RetryAsync(parse.GetValue(folder)!.FullName, parse.GetValue(failed),
                parse.GetValue(quarantined), Display(), cancel, Console.Error.WriteLine);
            return Finish(result, parse.GetValue(json));
        });
        return command;
    }

    private static Command Status()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "The job folder." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the status as JSON to this file." };
        var command = new Command("status",
            "Where a job stands (read from its state; works while it runs and after it stopped).") { folder, json };
        command.SetAction(parse =>
        {
            var status = InferJob.Status(parse.GetValue(folder)!.FullName);
            Console.WriteLine(Line(status));
            foreach (var w in status.Workers) Console.WriteLine(
                $"  worker {w.Id} on {w.Host}: {w.Records:N0} records, {w.Throughput:F1} " +
                    $"records/s{(w.Left is null ? "" : $" ({w.Left})")}");
            foreach (var f in status.Failed) Console.WriteLine(
                $"  FAILED shard {f.Shard} (records {f.FirstRecord}..{f.FirstRecord + f.Records - 1}) " +
                    $"after {f.Attempts} attempts: {f.Reason}");
            Facts.WriteJson(parse.GetValue(json), status);
            return 0;
        });
        return command;
    }

    private static Command Verify()
    {
        var folder = new Argument<DirectoryInfo>("folder") { Description = "The job folder." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the check as JSON to this file." };
        var command = new Command("verify",
            "Read the output back and check every input record is there exactly once (output or " +
                "quarantine).") { folder, json };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(folder)!.FullName;
            var check = InferOutput.Verify(dir, RecordSource.Open(InferJob.ReadSpec(dir)));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{check.Records:N0} input records: {check.Rows:N0} output rows, {check.Quarantined:N0} " +
                    $"quarantined, {check.Missing:N0} missing, {check.Duplicated:N0} " +
                        $"duplicated, {check.Unexpected:N0} unexpected: {(check.ExactlyOnce ? "exactly once" : "NOT " +
                            "exactly once")}"));
            Facts.WriteJson(parse.GetValue(json), check);
            return check.ExactlyOnce ? 0 : 1;
        });
        return command;
    }

    private static Command Worker()
    {
        var command = new Command(ChildCommands.InferWorker[^1], "Join a running job as a worker (any machine that " +
            "sees the job folder). SIGTERM drains: the shards held are finished, then it leaves; a second signal " +
            "gives them back.");
        var options = new CliOptions<InferWorkerOptions>(command, new(), "infer worker");
        command.SetAction(async (parse, cancel) =>
            await InferWorkerHost.RunAsync(options.Bind(parse), cancel, Console.Error.WriteLine));
        return command;
    }

    private static Command Kubernetes()
    {
        var command = new Command("k8s",
            "Write Kubernetes manifests for a job (token Secret, coordinator Job and Service, workers as a " +
                "work-queue Job); --apply also creates them in the kubeconfig's cluster.");
        var options = new CliOptions<InferKubernetesOptions>(command, new(), "infer k8s");
        command.SetAction(async (parse, cancel) =>
        {
            foreach (var file in await InferKubernetes.WriteAsync(options.Bind(parse), cancel)) Console.WriteLine(file);
            return 0;
        });
        return command;
    }

    private static Command Chaos()
    {
        var json = new Option<FileInfo?>("--json") { Description
            = "Write the result (events and the exactly-once check) as JSON to this file." };
        var command = new Command("chaos",
            "Run a real job and kill workers (SIGKILL) and the coordinator (SIGKILL, then resume) while it runs; " +
                "read the output back and check every record is there exactly once.") { json };
        var options = new CliOptions<ChaosOptions>(command, new(), "infer chaos");
        command.SetAction(async (parse, cancel) =>
        {
            var result = await InferChaos.RunAsync(options.Bind(parse), Console.WriteLine, cancel);
            Facts.Print(result);
            Facts.WriteJson(parse.GetValue(json), result);
            return result.Check.ExactlyOnce ? 0 : 1;
        });
        return command;
    }

    private static int Finish(InferResult result, FileInfo? json)
    {
        Facts.Print(result);
        Facts.WriteJson(json, result);
        // 3: completed, but shards failed past --retries (listed above and in the job folder)
        return result.State switch { "completed" => 0, "completed with failures" => 3, "cancelled" => 130, _ => 1 };
    }

    /// <summary>A progress bar with ETA on a terminal; a plain line every 5 s otherwise.</summary>
    private static IProgress<InferStatus> Display()
    {
        var terminal = !Console.IsOutputRedirected;
        var last = DateTime.MinValue;
        return new Progress<InferStatus>(status =>
        {
            var now = DateTime.UtcNow;
            if (terminal)
            {
                Console.Write($"\r{Line(status)}   ");
                if (status.Finished) Console.WriteLine();
            }
            else if (now - last > TimeSpan.FromSeconds(5) || status.Finished)
            {
                Console.WriteLine(Line(status));
                last = now;
            }
        });
    }

    private static string Line(InferStatus s)
    {
        var fraction = s.Records == 0 ? 1 : (double)s.RecordsDone / s.Records;
        var bar = new string('#', (int)(fraction * 20)).PadRight(20, '.');
        var eta = s.EtaSeconds is { } e ? TimeSpan.FromSeconds(Math.Min(e, 359999)).ToString(@"hh\:mm\:ss",
            CultureInfo.InvariantCulture) : "--:--:--";
        return string.Create(CultureInfo.InvariantCulture,
            $"[{bar}] {s.RecordsDone:N0}/{s.Records:N0} records, shards {s.ShardsDone}/{s.Shards} ({s.Failed.Count} " +
                $"failed), {s.RecordsPerSecond:F1} rec/s, ETA {eta}, {s.ActiveWorkers} worker(s), " +
                    $"bottleneck {s.Bottleneck ?? "-"}");
    }
}
