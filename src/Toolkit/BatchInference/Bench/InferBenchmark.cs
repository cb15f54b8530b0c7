using System.Diagnostics;
using System.Text.Json;
using Toolkit.Options;
using Toolkit.Runtime;

namespace Toolkit.BatchInference;

/// <summary>What <c>toolkit bench infer</c> measures.</summary>
internal sealed record InferBenchmarkOptions
{
    /// <summary>Records per configuration.</summary>
    [Option("Records per configuration (generated sentences).")]
    public int Records { get; init; } = 2000;

    /// <summary>Records per model call.</summary>
    [Option("Records per model call.")]
    public int BatchSize { get; init; } = 32;

    /// <summary>Threads the model may use in total (default: the machine's cores).</summary>
    [Option("Threads the models may use in total (0: the machine's cores).")]
    public int Threads { get; init; }

    /// <summary>Folder for the benchmark's job folders.</summary>
    [Option("Folder for the benchmark's job folders ($TOOLKIT_RUNS_DIR, else runs).", Name = "runs-dir")]
    public string RunsDirectory { get; init; } = Runs.RunDirectory.DefaultRoot;
}

/// <summary>One configuration's throughput.</summary>
/// <param name="Name">What ran.</param>
/// <param name="Pipeline">embed or embed+score.</param>
/// <param name="RecordsPerSecond">End-to-end records per second (file in, files out), or the model alone for
/// ceilings.</param>
/// <param name="Seconds">Wall time.</param>
/// <param name="OfCeiling">Fraction of the same pipeline's compute-only ceiling.</param>
/// <param name="Note">How it ran.</param>
internal sealed record InferBenchmarkRun(string Name, string Pipeline, double RecordsPerSecond, double Seconds,
    double OfCeiling, string Note);

/// <summary>The JSON of <c>toolkit bench infer</c>.</summary>
internal sealed record InferBenchmarkReport(InferBenchmarkOptions Options, int Cores,
    IReadOnlyList<InferBenchmarkRun> Runs, double PipelinedOverSequential, double DagOverOneAfterAnother);

/// <summary>
/// Batch-inference throughput against its references, on the same generated input: the compute-only ceiling (the model
/// alone on in-memory, pre-tokenised batches, every core busy), the sequential baseline (one process reading,
/// tokenising, predicting and writing one batch after another), the pipelined worker, several worker processes through
/// the coordinator, and for two models the pipelined DAG against running one model over the whole input and then the
/// other.
/// </summary>
internal static class InferBenchmark
{
    /// <summary>Runs every configuration.</summary>
    public static async Task<InferBenchmarkReport> RunAsync(InferBenchmarkOptions o, Action<string>? log = null,
        CancellationToken cancel = default)
    {
        var cores = o.Threads > 0 ? o.Threads : Environment.ProcessorCount;
        var root = Path.GetFullPath(Path.Combine(o.RunsDirectory, $"bench-infer-{DateTime.UtcNow:yyyyMMdd-HHmmss}"));
        Directory.CreateDirectory(root);
        var input = Path.Combine(root, "input.jsonl");
        SentenceDataset.Write(input, o.Records, seed: 7);
        var runs = new List<InferBenchmarkRun>();
        var ceilings = new Dictionary<string, double>();
        void Add(InferBenchmarkRun run)
        {
            run = run with { OfCeiling = ceilings.TryGetValue(run.Pipeline,
                out var c) && c > 0 ? run.RecordsPerSecond / c : 1 };
            runs.Add(run);
            log?.Invoke(
                $"{run.Name,-34} {run.Pipeline,-12} {run.RecordsPerSecond,8:F1} records/s  {run.OfCeiling,5:P0} of " +
                    $"ceiling  ({run.Note})");
        }

        var texts = new JsonlSource(input, "id", "text").Read(0, o.Records).Select(r => r.Text!).ToList();
        foreach (var pipeline in new[] { InferPipeline.Embed, InferPipeline.EmbedAndScore })
        {
            var name = OptionSpec.EnumName(typeof(InferPipeline), pipeline);
            // Ceiling: each model alone, every core busy (best of one replica with all threads and one replica per
            // core); a DAG's ceiling is the models' times added.
            var seconds = 0.0;
            foreach (var model in ModelStages.Create(new InferJobOptions {
                Models = new() { Pipeline = pipeline, Threads = 1 },
            }))
            {
                var prepared = texts.Select(model.Prepare).ToList();
                var best = Math.Min(Compute(ModelStages.Create(new InferJobOptions {
                    Models = new() { Pipeline = pipeline, Threads = cores },
                }).First(m => m.Name == model.Name), prepared, o.BatchSize, 1),
                    Compute(model, prepared, o.BatchSize, cores));
                seconds += best;
            }
            ceilings[name] = o.Records / seconds;
            Add(pipeline == InferPipeline.Embed
                ? new InferBenchmarkRun("compute-only ceiling", name, o.Records / seconds, seconds, 1,
                    "the model alone on pre-tokenised in-memory batches, every core busy")
                : new InferBenchmarkRun("compute-only, models in turn", name, o.Records / seconds, seconds, 1,
                    "each model alone on in-memory batches, one after the other: not a ceiling for a pipeline, where " +
                        "the models overlap"));

            var sequential = Sequential(input, pipeline, o.BatchSize, cores, Path.Combine(root,
                $"sequential-{name.Replace('+', '-')}.jsonl"));
            Add(new InferBenchmarkRun("sequential baseline", name, o.Records / sequential, sequential, 0,
                $"one process: read, tokenise, predict ({cores} threads), write, one batch after another"));
            if (pipeline == InferPipeline.EmbedAndScore)
            {
                var oneAfterAnother = OneAfterAnother(input, o.BatchSize, cores, root);
                Add(new InferBenchmarkRun("models one after another", name, o.Records / oneAfterAnother,
                    oneAfterAnother, 0, "embed the whole input, write it, then score the whole input"));
            }
            foreach (var (replicas, threads) in new[] { (1, cores), (cores, 1) })
            {
                var spec = new InferJobOptions {
                    Data = new() { Input = input },
                    Models = new() { Pipeline = pipeline, BatchSize = o.BatchSize, Replicas = replicas,
                        Threads = threads },
                    Scheduling = new() { ShardSize = 250, Workers = 1 },
                    Launch = InferJobOptions.DefaultLaunch with { Launcher = Jobs.Launcher.InProcess,
                        RunsDirectory = root },
                };
                var result = await InferJob.RunAsync(spec, null, cancel);
                Add(new InferBenchmarkRun($"pipelined worker ({replicas}x{threads} threads)", name,
                    result.RecordsPerSecond, result.Seconds, 0,
                    $"one worker in this process, {replicas} replica(s) per model of {threads} thread(s); " +
                        $"bottleneck {result.Bottleneck}"));
            }
            var processes = await InferJob.RunAsync(new InferJobOptions {
                Data = new() { Input = input },
                Models = new() { Pipeline = pipeline, BatchSize = o.BatchSize, Threads = 1 },
                Scheduling = new() { ShardSize = 250, Workers = cores },
                Launch = InferJobOptions.DefaultLaunch with { RunsDirectory = root },
            }, null, cancel);
            Add(new InferBenchmarkRun(
                $"{cores} worker processes", name, processes.RecordsPerSecond, processes.Seconds, 0,
                $"local worker processes over gRPC, 1 thread each; includes process start and model load; " +
                    $"bottleneck {processes.Bottleneck}"));
        }
        double Best(string pipeline,
            string prefix) => runs.Where(r => r.Pipeline == pipeline && r.Name.StartsWith(prefix,
                StringComparison.Ordinal)).Max(r => r.RecordsPerSecond);
        return new InferBenchmarkReport(o, cores, runs,
            Math.Max(Best("embed", "pipelined"), Best("embed", $"{cores} worker")) / Best("embed", "sequential"),
            Math.Max(Best("embed+score", "pipelined"), Best("embed+score", $"{cores} worker")) / Best("embed+score",
                "models one after another"));
    }

    /// <summary>Seconds for <paramref name="replicas"/> replicas to predict every prepared input in batches (after one
    /// warm-up batch each).</summary>
    private static double Compute(IModelStage model, IReadOnlyList<object> prepared, int batch, int replicas)
    {
        var batches = prepared.Chunk(batch).ToList();
        var sessions = Enumerable.Range(0, replicas).Select(_ => model.CreateReplica()).ToList();
        try
        {
            foreach (var s in sessions) s.Predict(batches[0]);
            var next = -1;
            var clock = Stopwatch.StartNew();
            Parallel.ForEach(sessions, new ParallelOptions { MaxDegreeOfParallelism = replicas }, s =>
            {
                for (var i = Interlocked.Increment(ref next); i < batches.Count; i
                    = Interlocked.Increment(ref next)) s.Predict(batches[i]);
            });
            return clock.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var s in sessions) s.Dispose();
        }
    }

    /// <summary>The baseline: read a batch, tokenise it, predict it with each model, write it; then the next.</summary>
    private static double Sequential(string input, InferPipeline pipeline, int batch, int threads, string output)
    {
        var models = ModelStages.Create(new InferJobOptions {
            Models = new() { Pipeline = pipeline, Threads = threads },
        });
        var replicas = models.Select(m => m.CreateReplica()).ToList();
        try
        {
            var source = new JsonlSource(input, "id", "text");
            foreach (var (m, r) in models.Zip(replicas)) r.Predict([m.Prepare("warm up")]);
            var clock = Stopwatch.StartNew();
            using var file = File.Create(output);
            for (long first = 0; first < source.Count; first += batch)
            {
                var records = source.Read(first, Math.Min(batch, source.Count - first)).ToList();
                var outputs = models.Select((m,
                    k) => replicas[k].Predict([.. records.Select(r => m.Prepare(r.Text!))])).ToList();
                for (var i = 0; i < records.Count; i++) WriteRow(file, records[i].Id!, models,
                    outputs.Select(o => o[i]).ToList());
            }
            file.Flush(flushToDisk: true);
            return clock.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var r in replicas) r.Dispose();
        }
    }

    /// <summary>Two models without a DAG: the embedding job over the whole input, then the scoring job over the whole
    /// input.</summary>
    private static double OneAfterAnother(string input, int batch, int threads, string root) =>
        Sequential(input, InferPipeline.Embed, batch, threads, Path.Combine(root, "one-after-another-embed.jsonl"))
        + Sequential(input, InferPipeline.Score, batch, threads, Path.Combine(root, "one-after-another-score.jsonl"));

    private static void WriteRow(Stream file, string id, IReadOnlyList<IModelStage> models,
        IReadOnlyList<object> outputs)
    {
        using (var json = new Utf8JsonWriter(file))
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            for (var k = 0; k < models.Count; k++) models[k].Write(json, outputs[k]);
            json.WriteEndObject();
        }
        file.WriteByte((byte)'\n');
    }
}
