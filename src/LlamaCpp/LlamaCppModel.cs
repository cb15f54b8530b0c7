using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Toolkit.LlamaCpp;

/// <summary>
/// A GGUF model run by llama.cpp (LLamaSharp 0.30, CPU): logits of a token sequence, greedy decoding, tokenisation, and
/// decode throughput at a batch size. The KV cache is kept in fp32 and flash attention is off, so its fp32 logits agree
/// with an fp32 reference to about 1e-5 (with the defaults, an fp16 cache and flash attention, they differ by 1e-2).
/// </summary>
public sealed class LlamaCppModel : IDisposable
{
    private static readonly Lock Logging = new();
    private static bool _quiet;
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;

    private LlamaCppModel(LLamaWeights weights, LLamaContext context) => (_weights, _context) = (weights, context);

    /// <summary>Loads a GGUF file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="threads">CPU threads for decoding and batches.</param>
    /// <param name="context">KV cache cells (tokens over all sequences).</param>
    /// <param name="sequences">Sequences decoded at once (batch size of <see cref="DecodeRate"/>).</param>
    public static LlamaCppModel Load(string path, int threads, int context = 512, int sequences = 1)
    {
        Quiet();
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)context, Threads = threads, BatchThreads = threads, BatchSize = (uint)context,
                UBatchSize = (uint)context,
            SeqMax = (uint)sequences, GpuLayerCount = 0, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false, KVUnified = true,
        };
        var weights = LLamaWeights.LoadFromFile(parameters);
        try
        {
            return new LlamaCppModel(weights, weights.CreateContext(parameters));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Silences llama.cpp's log (it writes every load's details to stderr) unless
    /// <c>TOOLKIT_LLAMA_LOG=1</c>.</summary>
    private static void Quiet()
    {
        lock (Logging)
        {
            if (_quiet) return;
            var show = Environment.GetEnvironmentVariable("TOOLKIT_LLAMA_LOG") == "1";
            NativeLibraryConfig.All.WithLogCallback((level, message) => { if (show) Console.Error.Write(message); });
            _quiet = true;
        }
    }

    /// <summary>Vocabulary size.</summary>
    public int VocabularySize => _weights.Vocab.Count;

    /// <summary>Next-token logits at every position of <paramref name="tokens"/> (one forward, sequence 0, from an
    /// empty cache).</summary>
    public float[][] Logits(IReadOnlyList<int> tokens)
    {
        Clear();
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Count; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
        Check(_context.Decode(batch));
        return [.. Enumerable.Range(0, tokens.Count).Select(i => _context.NativeHandle.GetLogitsIth(i).ToArray())];
    }

    /// <summary>Greedy continuation of <paramref name="prompt"/>: <paramref name="count"/> tokens, or fewer at a stop
    /// token.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int count, IReadOnlySet<int> stop)
    {
        Clear();
        var batch = new LLamaBatch();
        for (var i = 0; i < prompt.Count; i++) batch.Add((LLamaToken)prompt[i], i, LLamaSeqId.Zero,
            i == prompt.Count - 1);
        Check(_context.Decode(batch));
        var output = new List<int>();
        var position = prompt.Count;
        while (output.Count < count)
        {
            var logits = _context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            var next = 0;
            for (var v = 1; v < logits.Length; v++) if (logits[v] > logits[next]) next = v;
            output.Add(next);
            if (stop.Contains(next)) break;
            batch.Clear();
            batch.Add((LLamaToken)next, position++, LLamaSeqId.Zero, true);
            Check(_context.Decode(batch));
        }
        return output;
    }

    /// <summary>llama.cpp's own tokenisation of a text (special tokens not parsed).</summary>
    public int[] Tokenize(string text, bool addBos) => [.. _context.Tokenize(text, addBos,
        special: false).Select(t => (int)t)];

    /// <summary>
    /// Decode throughput with <paramref name="batch"/> sequences decoded together (one llama.cpp batch per step, one
    /// token per sequence), after each sequence's prompt is prefilled in one batch; the first tokens are not sampled
    /// (argmax of token 0 is enough to time the forward).
    /// </summary>
    /// <returns>Prefill and decode tokens per second.</returns>
    public (double PrefillTokensPerSecond, double DecodeTokensPerSecond) DecodeRate(int batch, int prompt, int steps)
    {
        Clear();
        var input = new LLamaBatch();
        var clock = Stopwatch.StartNew();
        for (var s = 0; s < batch; s++)
            for (var i = 0; i < prompt; i++) input.Add((LLamaToken)((i * 7 + s) % VocabularySize), i, (LLamaSeqId)s,
                i == prompt - 1);
        Check(_context.Decode(input));
        var prefill = batch * prompt / clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (var step = 0; step < steps; step++)
        {
            input.Clear();
            for (var s = 0; s < batch; s++) input.Add((LLamaToken)((step * 13 + s) % VocabularySize), prompt + step,
                (LLamaSeqId)s, true);
            Check(_context.Decode(input));
        }
        return (prefill, batch * steps / clock.Elapsed.TotalSeconds);
    }

    private void Clear() => _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)(-1), -1, -1);   // every sequence

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException(
            $"llama.cpp could not decode the batch: {result}.");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
