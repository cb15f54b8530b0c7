using Toolkit.Models;
using static TorchSharp.torch;

namespace Toolkit.Data;

/// <summary>
/// A token stream with deterministic batch sampling: the batch for (seed, step, micro-batch index) is the same
/// whichever rank or process draws it, so sharded runs and their single-process reference see identical data.
/// </summary>
internal sealed class TokenDataset
{
    private readonly int[] _tokens;

    /// <summary>Wraps tokens (at least <c>contextLength + 1</c> of them).</summary>
    public TokenDataset(int[] tokens) => _tokens = tokens;

    /// <summary>Number of tokens.</summary>
    public int Length => _tokens.Length;

    /// <summary>A text tokenised by <paramref name="tokenizer"/> (default the byte tokenizer).</summary>
    public static TokenDataset Of(string text, TextTokenizer? tokenizer = null) =>
        new([.. (tokenizer ?? TextTokenizer.Bytes).EncodeText(text).Select(t => (int)t)]);

    /// <summary>The embedded synthetic corpus, tokenised by <paramref name="tokenizer"/> (default the byte
    /// tokenizer).</summary>
    public static TokenDataset SyntheticStories(TextTokenizer? tokenizer = null) => Of(SyntheticCorpus.Embedded(),
        tokenizer);

    /// <summary>A text file, tokenised by <paramref name="tokenizer"/> (default the byte tokenizer).</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static TokenDataset FromTextFile(string path, TextTokenizer? tokenizer = null) => File.Exists(path)
        ? Of(File.ReadAllText(path), tokenizer)
        : throw new FileNotFoundException($"Training text '{path}' does not exist.", path);

    /// <summary>Inputs and next-token targets, each [batch, length] int64, for one micro-batch.</summary>
    /// <exception cref="ArgumentException">The data set is shorter than one sequence.</exception>
    public (Tensor Inputs, Tensor Targets) Batch(int seed, int step, int microBatch, int batch, int length,
        Device? device = null)
    {
        if (_tokens.Length < length + 1)
            throw new ArgumentException(
                $"The data set has {_tokens.Length} tokens; sequences of {length} need at least {length + 1}.");
        // not HashCode: it is salted per process
        var random = new Random(unchecked(seed * 1_000_003 + step * 10_007 + microBatch));
        var inputs = new long[batch * length];
        var targets = new long[batch * length];
        for (var b = 0; b < batch; b++)
        {
            var start = random.Next(_tokens.Length - length);
            for (var t = 0; t < length; t++)
            {
                inputs[b * length + t] = _tokens[start + t];
                targets[b * length + t] = _tokens[start + t + 1];
            }
        }
        return (tensor(inputs, [batch, length], device: device), tensor(targets, [batch, length], device: device));
    }
}
