using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.BatchInference;

/// <summary>How the input file is read.</summary>
public enum InputFormat
{
    /// <summary>From the file's extension: <c>.jsonl</c>/<c>.ndjson</c>, <c>.csv</c> or <c>.parquet</c>.</summary>
    [JsonStringEnumMemberName("auto")] Auto,
    /// <summary>One JSON object per line.</summary>
    [JsonStringEnumMemberName("jsonl")] Jsonl,
    /// <summary>RFC 4180 CSV with a header row (quoted fields may hold commas, quotes and newlines).</summary>
    [JsonStringEnumMemberName("csv")] Csv,
    /// <summary>Apache Parquet: the id column (string or integer) and the text column (string) are read, row group by
    /// row group.</summary>
    [JsonStringEnumMemberName("parquet")] Parquet,
}

/// <summary>How output parts are written.</summary>
public enum OutputFormat
{
    /// <summary>One JSON object per line: the id, then each model's outputs.</summary>
    [JsonStringEnumMemberName("jsonl")] Jsonl,
    /// <summary>Apache Parquet: an <c>id</c> column, then each model's outputs (embeddings as lists of floats, scores
    /// as doubles).</summary>
    [JsonStringEnumMemberName("parquet")] Parquet,
}

/// <summary>The pipeline's model stages, in order.</summary>
public enum InferPipeline
{
    /// <summary>Sentence embeddings with all-MiniLM-L6-v2 (ONNX Runtime): the default workload.</summary>
    [JsonStringEnumMemberName("embed")] Embed,
    /// <summary>Two models: MiniLM embeddings, then the toolkit's TorchSharp GPT (small preset, seed 1) scoring each
    /// record (mean log-likelihood per byte).</summary>
    [JsonStringEnumMemberName("embed+score")] EmbedAndScore,
    /// <summary>The toolkit's TorchSharp GPT scoring each record alone.</summary>
    [JsonStringEnumMemberName("score")] Score,
    /// <summary>The toolkit's GPT continuing each record's text with the KV-cache generation engine (sampled; stops at
    /// a newline).</summary>
    [JsonStringEnumMemberName("generate")] Generate,
}

/// <summary>
/// One batch-inference job, validated once: the JSON spec file (<c>--spec</c>), the CLI options and the magic options
/// all bind to this record. The job folder is a run folder; its <c>state.db</c> (SQLite) is the coordinator's durable
/// state, <c>output/part-NNNNNN-TOKEN.jsonl</c> (or <c>.parquet</c>) one file per shard, <c>quarantine/</c> the records
/// that failed with their reasons.
/// </summary>
public sealed record InferJobOptions : IJobOptions
{
    /// <summary>What the job reads and how it writes (<c>--input</c>, <c>--format</c>, <c>--output-format</c>,
    /// <c>--id-field</c>, <c>--text-field</c>).</summary>
    [OptionGroup] public InferDataOptions Data { get; init; } = new();

    /// <summary>The models and how each worker runs them (<c>--pipeline</c> or <c>--stages</c>, <c>--labels</c>, the
    /// model and sampling options, <c>--batch-size</c>, <c>--replicas</c>, <c>--threads</c>...).</summary>
    [OptionGroup] public InferModelOptions Models { get; init; } = new();

    /// <summary>Shards, leases, retries and workers (<c>--shard-size</c>, <c>--lease-seconds</c>, <c>--retries</c>,
    /// <c>--workers</c>, <c>--min-workers</c>, <c>--max-workers</c>...).</summary>
    [OptionGroup] public InferSchedulingOptions Scheduling { get; init; } = new();

    /// <summary>
    /// Where the coordinator and workers run: <c>local</c> worker processes (the default), <c>inproc</c> tasks,
    /// <c>external</c> workers that join, or <c>mpi</c> / <c>slurm</c> ranks (rank 0 the coordinator, the others
    /// workers; <see cref="LaunchOptions.Ranks"/> of them, default 3). The same options as every job's.
    /// </summary>
    [OptionGroup] public LaunchOptions Launch { get; init; } = DefaultLaunch;

    /// <summary>Where the coordinator listens for workers in other processes (<c>--bind</c>, <c>--port</c>,
    /// <c>--insecure</c>; the token is set from C# or the environment).</summary>
    [OptionGroup] public InferServiceOptions Service { get; init; } = new();

    /// <summary>Batch inference's launch defaults: local worker processes; 3 ranks under mpi or slurm.</summary>
    public static LaunchOptions DefaultLaunch => new() { Launcher = Launcher.Local, Ranks = 3, GroupSize = 1 };

    /// <summary>
    /// <see cref="Launch"/> in the job host's terms: the ranks of an emulated node form a group, and a Slurm job's
    /// tasks are spread evenly over its <c>--nodes</c> (default 1) unless <c>--ranks-per-node</c> says otherwise.
    /// </summary>
    [JsonIgnore]
    public LaunchOptions RankLaunch
    {
        get
        {
            if (Launch.Cluster is { } cluster) return Launch with { GroupSize = cluster.RanksPerNode };
            if (Launch is not { Launcher: Launcher.Slurm, RanksPerNode: null }) return Launch;
            var nodes = Launch.Nodes ?? 1;
            if (nodes < 1 || Launch.Ranks % nodes != 0) return Launch;   // Validate names the problem
            var perNode = Launch.Ranks / nodes;
            return Launch with { Nodes = nodes, RanksPerNode = perNode, GroupSize = perNode };
        }
    }

    /// <summary>
    /// Moves the settings of a spec written before they became option groups into them (the model into <c>model</c>;
    /// the data, model, scheduling and service settings into <c>data</c>, <c>models</c>, <c>scheduling</c> and
    /// <c>service</c>; the Slurm settings into <c>slurm</c>, the launch settings into <c>launch</c>), so older spec
    /// files and job folders read the same; a <c>launch</c> group that names only some settings gets
    /// <see cref="DefaultLaunch"/>'s for the others.
    /// </summary>
    public static void MigrateJson(System.Text.Json.Nodes.JsonObject spec)
    {
        if (spec["model"] is null && (spec.ContainsKey("gptModel") || spec.ContainsKey("gptCheckpoint")))
        {
            spec.Remove("gptModel", out var preset);
            spec.Remove("gptCheckpoint", out var checkpoint);
            spec["model"] = new System.Text.Json.Nodes.JsonObject { ["name"] = (checkpoint
                ?? preset)?.GetValue<string>() ?? "small" };
        }
        Move(spec, "data", ["input", "format", "outputFormat", "idField", "textField"]);
        Move(spec, "models", ["pipeline", "stages", "labels", "model", "sampling", "maxNewTokens", "batchSize",
            "maxTokens", "replicas", "threads"]);
        Move(spec, "scheduling", ["shardSize", "shardSeconds", "retries", "leaseSeconds", "workers", "minWorkers",
            "maxWorkers"]);
        Move(spec, "service", ["bind", "port", "token"]);
        Move(spec, "slurm", ["partition", "time", "account", "slurmArgs"]);
        // A spec of a job that was not a Slurm job wrote nodes = 1 (the old default): it asks for nothing.
        if (spec["launch"] is null && spec["launcher"]?.GetValue<string>() != "slurm") spec.Remove("nodes");
        Move(spec, "launch", ["launcher", "ranks", "nodes", "slurm", "emulate", "interBandwidth", "runsDirectory"]);
        // What a partial launch group leaves out is batch inference's default, not another job's.
        if (spec["launch"] is System.Text.Json.Nodes.JsonObject launch
            && System.Text.Json.JsonSerializer.SerializeToNode(DefaultLaunch, Runtime.ToolkitJson.Options) is
                System.Text.Json.Nodes.JsonObject defaults)
            foreach (var (key, value) in defaults)
                if (!launch.ContainsKey(key)) launch[key] = value?.DeepClone();
    }

    private static void Move(System.Text.Json.Nodes.JsonObject spec, string group, string[] keys)
    {
        if (spec[group] is not null || !keys.Any(spec.ContainsKey)) return;
        var moved = new System.Text.Json.Nodes.JsonObject();
        foreach (var key in keys)
            if (spec.Remove(key, out var value) && value is not null) moved[key] = value;
        spec[group] = moved;
    }

    /// <summary>A fixed name for the job folder under the runs folder; when it already holds this job, the job is
    /// resumed (idempotent starts).</summary>
    [Option("A fixed name for the job folder under --runs-dir (default: infer-<time>-<random>); if that folder " +
        "already holds the job, it is resumed, so a restarted coordinator (a Kubernetes pod, a cron) simply " +
            "continues.")]
    public string? JobName { get; init; }

    /// <summary>True when <paramref name="other"/> lays out the same shards (input, format, shard size): what a resumed
    /// job may not change.</summary>
    public bool SameLayout(InferJobOptions other)
        => Data.Input == other.Data.Input && Data.Format == other.Data.Format
            && Scheduling.ShardSize == other.Scheduling.ShardSize;

    /// <inheritdoc/>
    public void Check()
    {
        Data.Check();
        // Before the scheduling checks, which would name --min-workers for it.
        if (Scheduling is { Workers: 0, MaxWorkers: 0 } && Launch.Launcher is Launcher.Local or Launcher.InProcess)
            throw new ArgumentOutOfRangeException(nameof(Scheduling.Workers), 0,
                "must be at least 1: no worker would run the job (--launcher external starts none and waits for " +
                    "workers to join)");
        Scheduling.Check();
        Models.Check();
        var fields = InferStages.Of(Models).SelectMany(InferStages.OutputFields).ToHashSet();
        if (Data.KeptColumns.FirstOrDefault(fields.Contains) is { } clash) throw new ArgumentException(
            $"'{clash}' is also a field the models write to each row; leave it out (or name the stage otherwise)",
            nameof(InferDataOptions.KeepColumns));
        Service.Check();
        CheckLaunch();
        if (JobName is not null && !System.Text.RegularExpressions.Regex.IsMatch(JobName,
            "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"))
            throw new ArgumentException(
                $"'{JobName}' is not a folder name: letters, digits, '.', '_' and '-' only (no path separators)",
                    nameof(JobName));
    }

    private void CheckLaunch()
    {
        if (Launch.Cluster is { } cluster && (Launch.Launcher != Launcher.Mpi
            || cluster.Nodes * cluster.RanksPerNode != Launch.Ranks))
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.Emulate), Launch.Emulate,
                $"needs --launcher mpi and --ranks {cluster.Nodes * cluster.RanksPerNode}");
        if (Launch is { Launcher: Launcher.Slurm, Nodes: { } nodes, RanksPerNode: null }
            && (nodes < 1 || Launch.Ranks % nodes != 0))
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.Nodes), nodes,
                $"must be at least 1 and divide --ranks ({Launch.Ranks})");
        var launch = RankLaunch;
        var ranks = launch.Launcher is Launcher.Mpi or Launcher.Slurm;
        if (ranks && launch.Ranks < 2)
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.Ranks), launch.Ranks,
                $"must be at least 2 with --launcher {OptionSpec.EnumName(typeof(Launcher), launch.Launcher)} " +
                "(a coordinator and a worker)");
        if (Launch.GroupSize != DefaultLaunch.GroupSize)
            throw new ArgumentOutOfRangeException(nameof(LaunchOptions.GroupSize), Launch.GroupSize,
                "groups ranks for PaRO and HO-Ring; batch inference has no groups");
        launch.Validate();
    }
}
