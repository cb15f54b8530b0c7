using System.Text.Json.Serialization;
using Toolkit.Jobs;
using Toolkit.Options;

namespace Toolkit.BatchInference;

/// <summary>What a batch-inference job reads, and how it writes what the models make of it (the <c>data</c> group of
/// a spec).</summary>
public sealed record InferDataOptions : ICheckedOptions
{
    /// <summary>The input file (JSONL or CSV) of records with an id and a text field.</summary>
    [Option("Input file of records: JSONL (one object per line), CSV with a header, or Parquet; each record has an " +
        "id and a text field.")]
    public string? Input { get; init; }

    /// <summary>The input's format. Default auto (from the extension).</summary>
    [Option("Input format: auto (from the extension), jsonl, csv or parquet.")]
    public InputFormat Format { get; init; } = InputFormat.Auto;

    /// <summary>How output parts are written. Default jsonl.</summary>
    [Option("Output parts (one per shard): jsonl or parquet.")]
    public OutputFormat OutputFormat { get; init; } = OutputFormat.Jsonl;

    /// <summary>Where the output parts, <c>manifest.json</c> and <c>_SUCCESS</c> go. Default: the job folder's
    /// <c>output/</c>.</summary>
    [Option("Folder the output parts, manifest.json and _SUCCESS go to: new or empty (the job folder's output/ " +
        "links to it; every worker must see it at this path); none: the job folder's own output/.")]
    public string? Output { get; init; }

    /// <summary>The field holding each record's id. Default id.</summary>
    [Option("Field (JSON key or CSV column) holding each record's id; the output carries it, once per record.")]
    public string IdField { get; init; } = "id";

    /// <summary>The field holding each record's text. Default text.</summary>
    [Option("Field (JSON key or CSV column) holding the text the models read.")]
    public string TextField { get; init; } = "text";

    /// <summary>Input columns carried through to each output row, comma-separated. Default none.</summary>
    [Option("Input columns (JSON keys, CSV or Parquet columns) carried through to each output row beside the id, " +
        "comma-separated, e.g. source,lang; a record lacking one is quarantined with the reason.")]
    public string? KeepColumns { get; init; }

    /// <summary>The kept columns, parsed.</summary>
    [JsonIgnore] public IReadOnlyList<string> KeptColumns => [.. (KeepColumns ?? "").Split(',',
        StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>The input format, resolved from the extension when auto.</summary>
    /// <exception cref="ArgumentException">Auto, and the extension is not one of the known ones.</exception>
    public InputFormat ResolveFormat() => Format != InputFormat.Auto ? Format
        : Path.GetExtension(Input ?? "").ToLowerInvariant() switch
        {
            ".jsonl" or ".ndjson" or ".json" => InputFormat.Jsonl,
            ".csv" => InputFormat.Csv,
            ".parquet" or ".pq" => InputFormat.Parquet,
            var other => throw new ArgumentException(
                $"cannot tell the format of '{Input}' from its extension '{other}': name it .jsonl, .csv or " +
                    $".parquet, or pass --format", nameof(Format)),
        };

    /// <inheritdoc/>
    public void Check()
    {
        if (string.IsNullOrWhiteSpace(Input)) throw new ArgumentException(
            "an input file is required (--input FILE, .jsonl, .csv or .parquet)", nameof(Input));
        if (!File.Exists(Input)) throw new ArgumentException($"the input file '{Input}' does not exist", nameof(Input));
        _ = ResolveFormat();
        if (Output is not null && string.IsNullOrWhiteSpace(Output))
            throw new ArgumentException("must name a folder", nameof(Output));
        if (string.IsNullOrWhiteSpace(IdField)) throw new ArgumentException("must name a field", nameof(IdField));
        if (string.IsNullOrWhiteSpace(TextField)) throw new ArgumentException("must name a field", nameof(TextField));
        var kept = KeptColumns;
        if (kept.Contains("id") || kept.Contains(IdField)) throw new ArgumentException(
            "names the id, which every output row has already; list other columns", nameof(KeepColumns));
        if (kept.GroupBy(k => k).FirstOrDefault(g => g.Count() > 1) is { } twice) throw new ArgumentException(
            $"names '{twice.Key}' twice", nameof(KeepColumns));
    }
}

/// <summary>The models a batch-inference job runs on each record, and how each worker runs them (the <c>models</c>
/// group of a spec).</summary>
public sealed record InferModelOptions : ICheckedOptions
{
    /// <summary>The models. Default embed.</summary>
    [Option("Model stages: embed (all-MiniLM-L6-v2 sentence embeddings, ONNX Runtime), score (the toolkit's " +
        "TorchSharp GPT: mean log-likelihood per byte), embed+score (both, as a two-model pipeline) or generate (the " +
            "GPT continues each text with the KV-cache engine).")]
    public InferPipeline Pipeline { get; init; } = InferPipeline.Embed;

    /// <summary>The model stages as a DAG (<see cref="InferStages"/>); null: the ones <see cref="Pipeline"/>
    /// names.</summary>
    [Option("Model stages as a DAG, replacing --pipeline: comma-separated [name=]model[(input)][*replicas], e.g. " +
        "\"emb=embed*2,topic=classify(emb),ppl=score\". Models: embed, score, generate, classify (zero-shot labels " +
            "of another stage's embeddings; needs --labels). A stage without (input) reads the text; generate's text " +
                "can feed embed, score or generate. Output fields are prefixed name_ unless a stage is named after " +
                    "its model.")]
    public string? Stages { get; init; }

    /// <summary>The labels of a classify stage, comma-separated.</summary>
    [Option("Labels of a classify stage, comma-separated (each embedded once; a record takes the nearest), e.g. " +
        "\"sports,politics,science\".")]
    public string? Labels { get; init; }

    /// <summary><see cref="Labels"/> split and trimmed.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> LabelList => Labels is null ? [] : [.. Labels.Split(',').Select(l => l.Trim())];

    /// <summary>
    /// The model of the score and generate stages: a GPT preset (untrained weights from seed 1), a toolkit checkpoint
    /// folder, or a Hugging Face folder. Default the small GPT.
    /// </summary>
    [OptionGroup] public Models.ModelOptions Model { get; init; } = new() { Name = DefaultModel };

    /// <summary>The model of score and generate when none is given.</summary>
    public const string DefaultModel = "small";

    /// <summary>How generate samples: temperature and top-p.</summary>
    [OptionGroup] public Generation.SamplingOptions Sampling { get; init; } = new();

    /// <summary>Most tokens generate writes per record (it stops earlier at the model's EOS, or a newline for a GPT
    /// preset); 0: half the context, at most 128. Default 0.</summary>
    [Option("Most tokens generate adds per record; it stops earlier at the model's end-of-sequence token (a newline " +
        "for a GPT preset) " +
        "(0: half the model's context, at most 128; the rest holds the prompt's end).")]
    public int MaxNewTokens { get; init; }

    /// <summary><see cref="MaxNewTokens"/>, with 0 resolved to half the context (at most 128) of a model of
    /// <paramref name="config"/>.</summary>
    public int EffectiveMaxNewTokens(Models.IModelConfig config) => MaxNewTokens > 0 ? MaxNewTokens : Math.Min(128,
        config.ContextLength / 2);

    /// <summary>Records per model call. Default 32.</summary>
    [Option("Records per model call (padded to the longest in the batch).")]
    public int BatchSize { get; init; } = 32;

    /// <summary>Tokens kept per record (longer texts are truncated). Default 128.</summary>
    [Option("Tokens kept per record for the embedding model; longer texts are truncated (MiniLM was trained on 128).")]
    public int MaxTokens { get; init; } = 128;

    /// <summary>Predictor replicas per model in each worker. Default 1.</summary>
    [Option("Predictor replicas per model in each worker (each its own session, fed by one queue).")]
    public int Replicas { get; init; } = 1;

    /// <summary>Threads per predictor replica. Default 1.</summary>
    [Option("Threads each predictor replica's ONNX Runtime session may use.")]
    public int Threads { get; init; } = 1;

    /// <inheritdoc/>
    /// <remarks>A score or generate model is resolved (its files read) to check its tokenizer and
    /// context.</remarks>
    public void Check()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "must be at least 1");
        if (MaxTokens < 3 || MaxTokens > 512) throw new ArgumentOutOfRangeException(nameof(MaxTokens), MaxTokens,
            "must be between 3 and 512 (the model's position limit)");
        if (Replicas < 1) throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, "must be at least 1");
        if (Threads < 1) throw new ArgumentOutOfRangeException(nameof(Threads), Threads, "must be at least 1");
        var models = InferStages.Of(this).Select(s => s.Model).ToHashSet();
        var usesModel = models.Overlaps(["score", "generate"]);
        if (Model.Name != DefaultModel && !usesModel)
            throw new ArgumentException(Stages is null
                ? "is the model of the score and generate pipelines: add --pipeline score, embed+score or generate"
                : "is the model of score and generate stages, and --stages has none", nameof(Model.Name));
        if (models.Contains("classify")) _ = InferLabels.Check(LabelList);
        else if (Labels is not null) throw new ArgumentException(
            "labels a classify stage, and there is none: add one to --stages, e.g. emb=embed,topic=classify(emb)",
                nameof(Labels));
        Sampling.Validate();
        if (!usesModel) return;
        var source = Model.Resolve();
        var config = source.Config;
        if (models.Contains("generate")) _ = source.Tokenizer.StopIds();
        if (models.Contains("generate") && (MaxNewTokens < 0 || MaxNewTokens > config.ContextLength - 2))
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens,
                $"must be between 1 and {config.ContextLength - 2}, or 0 for half (the model's context " +
                    $"is {config.ContextLength} tokens, prompt included)");
    }
}

/// <summary>How a batch-inference job's records are cut into shards and handed to workers, and how many workers the
/// autoscaler keeps (the <c>scheduling</c> group of a spec).</summary>
public sealed record InferSchedulingOptions : ICheckedOptions
{
    /// <summary>Records per shard (the unit of leasing, output and retry). Default 500.</summary>
    [Option("Records per shard: the unit of leasing, of output files (one part per shard) and of retries; leases " +
        "grow to several shards for fast workers.")]
    public int ShardSize { get; init; } = 500;

    /// <summary>Adaptive shards: the seconds of work a shard should hold at its worker's measured rate; 0 keeps shards
    /// as laid out. Default 20.</summary>
    [Option("Adaptive shards: a shard is split when the worker leasing it would take longer than this many seconds " +
        "at its measured rate, and near the end to the backlog's share per worker, so none finishes long after the " +
            "others (0: shards stay as laid out).")]
    public double ShardSeconds { get; init; } = 20;

    /// <summary>Attempts a shard gets before it is FAILED. Default 3.</summary>
    [Option("Attempts a shard gets (expired leases and worker errors count; preemption does not) before it is marked " +
        "FAILED and reported.")]
    public int Retries { get; init; } = 3;

    /// <summary>Lease length in seconds (renewed by heartbeats every third of it). Default 30.</summary>
    [Option("Lease length in seconds: a worker that stops heartbeating loses its shards after this long.")]
    public double LeaseSeconds { get; init; } = 30;

    /// <summary>Seconds a worker may hold shards without its pipeline moving a record before it loses them and is
    /// restarted (0: never). Default 300.</summary>
    [Option("Seconds a worker may hold shards while its pipeline moves no record (a hung model) before it loses " +
        "them and is restarted (0: never).")]
    public double StallSeconds { get; init; } = 300;

    /// <summary>Workers started at the beginning. Default 2.</summary>
    [Option("Workers started at the beginning.")]
    public int Workers { get; init; } = 2;

    /// <summary>The autoscaler's floor. Default 1.</summary>
    [Option("Fewest workers the autoscaler keeps while work remains (replacing workers that die).")]
    public int MinWorkers { get; init; } = 1;

    /// <summary>The autoscaler's ceiling; 0 means <see cref="Workers"/>. Default 0.</summary>
    [Option("Most workers the autoscaler starts when the backlog would take long at the measured throughput (0: " +
        "--workers).")]
    public int MaxWorkers { get; init; }

    /// <summary>Times mpiexec's ranks start again when they end before the job does. Default 3.</summary>
    [Option("Times the ranks of --launcher mpi are started again, resuming the job, when they end before it does " +
        "because one of them died (mpiexec ends every rank then): committed shards are kept, the rest redone; each " +
        "restart recorded in restarts.jsonl and the log.")]
    public int MaxRestarts { get; init; } = 3;

    /// <summary>The autoscaler's ceiling, resolved.</summary>
    [JsonIgnore]
    public int WorkerCeiling => MaxWorkers == 0 ? Workers : MaxWorkers;

    /// <summary>The lease length.</summary>
    [JsonIgnore]
    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds);

    /// <inheritdoc/>
    public void Check()
    {
        if (ShardSize < 1) throw new ArgumentOutOfRangeException(nameof(ShardSize), ShardSize, "must be at least 1");
        if (!(ShardSeconds >= 0)
            || double.IsInfinity(ShardSeconds)) throw new ArgumentOutOfRangeException(nameof(ShardSeconds),
                ShardSeconds, "must be 0 (fixed shards) or a positive number of seconds");
        if (Retries < 1) throw new ArgumentOutOfRangeException(nameof(Retries), Retries, "must be at least 1");
        if (!(LeaseSeconds >= 1)) throw new ArgumentOutOfRangeException(nameof(LeaseSeconds), LeaseSeconds,
            "must be at least 1 second");
        if (!(StallSeconds >= 0) || double.IsInfinity(StallSeconds)) throw new ArgumentOutOfRangeException(
            nameof(StallSeconds), StallSeconds, "must be 0 (never) or a number of seconds");
        if (Workers < 0) throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "must not be negative");
        if (MinWorkers < 0 || MinWorkers > WorkerCeiling) throw new ArgumentOutOfRangeException(nameof(MinWorkers),
            MinWorkers, $"must be between 0 and the ceiling ({WorkerCeiling})");
        if (MaxWorkers < 0 || (MaxWorkers > 0
            && MaxWorkers < Workers)) throw new ArgumentOutOfRangeException(nameof(MaxWorkers), MaxWorkers,
                $"must be 0 or at least --workers ({Workers})");
        if (MaxRestarts < 0) throw new ArgumentOutOfRangeException(nameof(MaxRestarts), MaxRestarts,
            "must not be negative");
    }
}

/// <summary>Where a batch-inference coordinator listens for workers in other processes, and the token they present
/// (the <c>service</c> group of a spec).</summary>
public sealed record InferServiceOptions : ICheckedOptions
{
    /// <summary>The coordinator's address. Default 127.0.0.1 (loopback only).</summary>
    [Option("Address the coordinator listens on (workers present the job's token on every address; see " +
        "docs/batch-inference.md).")]
    public string Bind { get; init; } = "127.0.0.1";

    /// <summary>The coordinator's port; 0 picks a free one. Default 0.</summary>
    [Option("Port the coordinator listens on (0: a free one, written to the job folder's coordinator.json).")]
    public int Port { get; init; }

    /// <summary>
    /// The token workers must present, set from C#; null: the <c>TOOLKIT_INFER_TOKEN</c> environment variable, or a
    /// random one. It goes to the job folder's <c>token</c> file (mode 0600) and never to <c>config.json</c> or a
    /// command line.
    /// </summary>
    [JsonIgnore]
    public string? Token { get; init; }

    /// <summary>Cleartext beyond loopback. Default false: a non-loopback coordinator serves TLS.</summary>
    [Option("Serve cleartext on a non-loopback --bind instead of TLS with a certificate made for the job (the token " +
        "still travels with every call, readable by anyone on the network).")]
    public bool Insecure { get; init; }

    /// <summary>True when the coordinator serves TLS: beyond loopback, unless <see cref="Insecure"/>.</summary>
    [JsonIgnore]
    public bool UsesTls => !IsLoopback && !Insecure;

    /// <summary>True when the coordinator listens on loopback only.</summary>
    [JsonIgnore]
    public bool IsLoopback => Bind is "127.0.0.1" or "localhost" or "::1";

    /// <inheritdoc/>
    public void Check()
    {
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port,
            "must be a TCP port (0 picks a free one)");
    }
}
