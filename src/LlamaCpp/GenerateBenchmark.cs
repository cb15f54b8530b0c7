using System.Diagnostics;
using Toolkit.Generation;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Options;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.LlamaCpp;

/// <summary>Options of <c>toolkit bench generate</c>: the generation engine against llama.cpp on the same
/// weights.</summary>
public sealed record GenerateBenchmarkOptions : ICheckedOptions
{
    /// <summary>A Hugging Face folder; null for a Llama of about 100 M parameters made by model init (kept for the next
    /// run).</summary>
    [Option("A Hugging Face folder of the decoder families (none: a Llama of about 100 M parameters made by model " +
        "init into " +
        "artifacts/bench/llama-100m, kept for the next run).")]
    public string? Model { get; init; }

    /// <summary>Batch sizes to measure. Default 1,16.</summary>
    [Option("Batch sizes (sequences decoded together), comma-separated.", Name = "batch")]
    public string Batches { get; init; } = "1,16";

    /// <summary>Prompt tokens per sequence. Default 32.</summary>
    [Option("Prompt tokens per sequence (prefilled in one forward).")] public int Prompt { get; init; } = 32;

    /// <summary>Tokens generated per sequence. Default 64.</summary>
    [Option("Tokens generated per sequence.")] public int NewTokens { get; init; } = 64;

    /// <summary>CPU threads for both engines; 0 for every core. Default 0.</summary>
    [Option("CPU threads, the same for both engines (0: every core).")] public int Threads { get; init; }

    /// <summary>A folder whose load time is measured; null for a Llama of about 1 GB made by model init.</summary>
    [Option("A Hugging Face folder whose load time is compared with reading its files (none: a Llama of about 1 GB " +
        "made by model init " +
        "into artifacts/bench/llama-1gb, kept for the next run).")]
    public string? LoadModel { get; init; }

    /// <summary>Skip the load-time measurement. Default false.</summary>
    [Option("Skip the load-time measurement.")] public bool SkipLoad { get; init; }

    /// <summary>The batch sizes as numbers.</summary>
    public IReadOnlyList<int> BatchList => [.. Batches.Split(',').Select(b => int.TryParse(b.Trim(),
        out var v) && v > 0 ? v
        : throw new ArgumentOutOfRangeException(nameof(Batches), Batches,
            $"takes positive integers separated by commas ('{b}' is not one)"))];

    /// <inheritdoc/>
    public void Check()
    {
        _ = BatchList;
        if (Prompt < 1) throw new ArgumentOutOfRangeException(nameof(Prompt), Prompt, "must be at least 1");
        if (NewTokens < 2) throw new ArgumentOutOfRangeException(nameof(NewTokens), NewTokens,
            "must be at least 2 (the first is timed with the prefill)");
        if (Threads < 0) throw new ArgumentOutOfRangeException(nameof(Threads), Threads,
            "must not be negative (0: every core)");
        if (Model is not null
            && ModelSource.Resolve(Model) is { Kind: not ModelSourceKind.HuggingFace } or { Config: not DecoderConfig })
            throw new ArgumentOutOfRangeException(nameof(Model), Model,
                "must be a Hugging Face folder of the decoder families (llama.cpp reads those)");
    }
}

/// <summary>One batch size: decode and prefill rates of both engines.</summary>
/// <param name="Batch">Sequences decoded together.</param>
/// <param name="TokensPerSecond">The toolkit engine's decode rate (tokens over all sequences per second).</param>
/// <param name="LlamaCppTokensPerSecond">llama.cpp's decode rate (one batch of every sequence's next token per
/// step).</param>
/// <param name="OverLlamaCpp">The ratio of the two.</param>
/// <param name="PrefillTokensPerSecond">The toolkit engine's prefill rate (every prompt in one forward).</param>
/// <param name="LlamaCppPrefillTokensPerSecond">llama.cpp's prefill rate (every prompt in one batch).</param>
public sealed record GenerateRow(int Batch, double TokensPerSecond, double LlamaCppTokensPerSecond, double OverLlamaCpp,
    double PrefillTokensPerSecond, double LlamaCppPrefillTokensPerSecond);

/// <summary>A checkpoint's load time against reading its files.</summary>
/// <param name="Folder">The folder.</param>
/// <param name="Bytes">Bytes of its weight files.</param>
/// <param name="ReadSeconds">Reading the files into newly allocated memory, as any loader must (after a first read, so
/// from the page cache), median of three.</param>
/// <param name="LoadSeconds">Opening the folder and loading the model into memory, median of three.</param>
/// <param name="LoadOverRead">The ratio of the two.</param>
public sealed record LoadRow(string Folder, long Bytes, double ReadSeconds, double LoadSeconds, double LoadOverRead);

/// <summary>What <c>bench generate</c> measured.</summary>
/// <param name="Model">The model's description.</param>
/// <param name="Parameters">Its parameter count.</param>
/// <param name="Threads">CPU threads of both engines.</param>
/// <param name="Cores">Cores of the machine.</param>
/// <param name="Prompt">Prompt tokens per sequence.</param>
/// <param name="NewTokens">Tokens generated per sequence.</param>
/// <param name="Rows">One row per batch size.</param>
/// <param name="Load">The load-time measurement, or null when skipped.</param>
public sealed record GenerateBenchmarkReport(string Model, long Parameters, int Threads, int Cores, int Prompt,
    int NewTokens,
    IReadOnlyList<GenerateRow> Rows, LoadRow? Load);

/// <summary>
/// <c>toolkit bench generate</c>: the generation engine's fp32 decode and prefill rates against llama.cpp (LLamaSharp)
/// on the same weights (the folder written as GGUF) and thread count, at each batch size; and the load time of a large
/// checkpoint against the time to read its files.
/// </summary>
public static class GenerateBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="log"/> receives a line per measurement.</summary>
    public static GenerateBenchmarkReport Run(GenerateBenchmarkOptions options, Action<string>? log = null)
    {
        options.Check();
        TorchRuntime.EnsureInitialized();
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        set_num_threads(threads);
        var folder = options.Model ?? Made("llama-100m", hidden: 768, layers: 12, heads: 12, kvHeads: 4,
            intermediate: 2048, tie: true, log);
        using var hf = HfModel.Open(folder);
        var gguf = Path.Combine(Path.GetTempPath(), $"toolkit-bench-{Environment.ProcessId}.gguf");
        GgufWriter.Write(hf, gguf);
        var rows = new List<GenerateRow>();
        try
        {
            foreach (var batch in options.BatchList)
            {
                var (prefill, decode) = Ours(hf, batch, options.Prompt, options.NewTokens);
                var context = batch * (options.Prompt + options.NewTokens) + 16;
                using var reference = LlamaCppModel.Load(gguf, threads, context, sequences: batch);
                reference.DecodeRate(batch, options.Prompt, 4);                                     // warm-up
                var (theirPrefill, theirDecode) = reference.DecodeRate(batch, options.Prompt, options.NewTokens - 1);
                rows.Add(new GenerateRow(batch, decode, theirDecode, decode / theirDecode, prefill, theirPrefill));
                log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"batch {batch,3}: decode {decode,8:F1} tok/s, llama.cpp {theirDecode,8:F1} tok/s " +
                    $"({decode / theirDecode:F2}x); prefill {prefill:F0} vs {theirPrefill:F0} tok/s"));
            }
        }
        finally
        {
            File.Delete(gguf);
        }
        var load = options.SkipLoad ? null
            : Load(options.LoadModel ?? Made("llama-1gb", hidden: 1024, layers: 16, heads: 16, kvHeads: 16,
                intermediate: 2816, tie: false, log), log);
        return new GenerateBenchmarkReport(hf.Config.ToString() ?? "", hf.Config.ParameterCount, threads,
            Environment.ProcessorCount,
            options.Prompt, options.NewTokens, rows, load);
    }

    /// <summary>The engine's prefill (the first step: every prompt, one forward) and decode rates at
    /// <paramref name="batch"/>.</summary>
    private static (double Prefill, double Decode) Ours(HfModel hf, int batch, int prompt, int newTokens)
    {
        using var engine = new GenerationEngine(hf.Config, Numerics.Fp32, batch,
            new SamplingOptions { Temperature = 0 }, [], newTokens,
            seed: 1, context: prompt + newTokens + 1);
        engine.LoadWeights(hf, 0);
        var vocabulary = hf.Config.VocabularySize;
        void Enqueue(int length)
        {
            for (var s = 0; s < batch; s++)
            {
                var tokens = Enumerable.Range(0, length).Select(i => (long)((i * 7 + s) % vocabulary));
                engine.Enqueue(new Sequence(s, [.. tokens]));
            }
        }
        Enqueue(8);                                                                                 // warm-up
        for (var i = 0; i < 4; i++) engine.Step();
        engine.EvictAll();
        Enqueue(prompt);
        var clock = Stopwatch.StartNew();
        engine.Step();
        var prefill = batch * prompt / clock.Elapsed.TotalSeconds;
        clock.Restart();
        engine.RunToCompletion();
        return (prefill, batch * (newTokens - 1) / clock.Elapsed.TotalSeconds);
    }

    private static LoadRow Load(string folder, Action<string>? log)
    {
        var files = Directory.GetFiles(folder, "*.safetensors");
        var bytes = files.Sum(f => new FileInfo(f).Length);
        unsafe double Read()
        {
            var clock = Stopwatch.StartNew();
            foreach (var file in files)
            {
                using var handle = File.OpenHandle(file);
                var length = RandomAccess.GetLength(handle);
                var memory = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)length);
                try
                {
                    for (long done = 0; done < length;)
                        done += RandomAccess.Read(handle, new Span<byte>(memory + done, (int)Math.Min(1L << 30,
                            length - done)), done);
                }
                finally
                {
                    System.Runtime.InteropServices.NativeMemory.Free(memory);
                }
            }
            return clock.Elapsed.TotalSeconds;
        }
        double Loaded()
        {
            var clock = Stopwatch.StartNew();
            using (var hf = HfModel.Open(folder))
            using (hf.Load()) { }
            return clock.Elapsed.TotalSeconds;
        }
        // into the page cache
        Read();
        var read = Statistics.Median([Read(), Read(), Read()]);
        var load = Statistics.Median([Loaded(), Loaded(), Loaded()]);
        log?.Invoke(FormattableString.Invariant(
            $"load {bytes / 1e9:F2} GB: {load:F2} s against {read:F2} s to read the files ({load / read:F2}x)"));
        return new LoadRow(folder, bytes, read, load, load / read);
    }

    /// <summary>A random-weight Llama made by model init under artifacts/bench (kept: later runs reuse it).</summary>
    private static string Made(string name, int hidden, int layers, int heads, int kvHeads, int intermediate, bool tie,
        Action<string>? log)
    {
        var folder = Path.Combine("artifacts", "bench", name);
        if (File.Exists(Path.Combine(folder, HfConfig.FileName))) return folder;
        log?.Invoke($"making {folder} with model init (kept for the next run)");
        return ModelInit.Run(new ModelInitOptions
        {
            Arch = "llama", Out = folder, Hidden = hidden, Layers = layers, Heads = heads, KvHeads = kvHeads,
                Intermediate = intermediate,
            Vocabulary = 32000, Context = 2048, TieEmbeddings = tie,
        });
    }
}
