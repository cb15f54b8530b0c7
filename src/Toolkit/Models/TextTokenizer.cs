using Microsoft.ML.Tokenizers;

namespace Toolkit.Models;

/// <summary>
/// Text to a model's token ids and back: the toolkit's byte tokenizer for its GPT presets, or a Hugging Face folder's
/// tokenizer through Microsoft.ML.Tokenizers (<see cref="HfTokenizer"/>), with the folder's special tokens and its
/// rules for the beginning-of-sequence token.
/// </summary>
public abstract class TextTokenizer
{
    /// <summary>The byte tokenizer (ids 0..255 are UTF-8 bytes) of the toolkit's GPT presets.</summary>
    public static TextTokenizer Bytes { get; } = new ByteTokens();

    /// <summary>The file it was read from (null for the byte tokenizer).</summary>
    public string? Source { get; init; }

    /// <summary>One more than the largest id the tokenizer produces.</summary>
    public abstract int Size { get; }

    /// <summary>The beginning-of-sequence token, or null.</summary>
    public long? BosId { get; init; }

    /// <summary>Whether <see cref="Encode"/> starts a text with <see cref="BosId"/> (<c>add_bos_token</c> or the
    /// post-processor's template).</summary>
    public bool AddsBos { get; init; }

    /// <summary>The end-of-sequence tokens (where generation stops).</summary>
    public IReadOnlyList<long> EosIds { get; init; } = [];

    /// <summary>
    /// The tokens a generation stops at: the EOS ids, or, for a tokenizer without any (the byte tokenizer of the GPT
    /// presets), the single token of a newline (the first of the list is the one an answer is ended with).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No EOS and no single token for a newline (parameter name
    /// <c>Name</c>, the <c>--model</c> option's).</exception>
    public IReadOnlyList<long> StopIds()
    {
        if (EosIds.Count > 0) return EosIds;
        var newline = EncodeText("\n");
        return newline.Length == 1 ? newline
            : throw new ArgumentOutOfRangeException(nameof(ModelOptions.Name),
                "its tokenizer has no EOS token and no single token for a newline to stop a generation with");
    }

    /// <summary>Ids of the special tokens (never produced from plain text; skipped by <see cref="Decode"/>).</summary>
    public IReadOnlySet<long> SpecialIds { get; init; } = new HashSet<long>();

    /// <summary>A text's ids, with the beginning-of-sequence token when the tokenizer adds one.</summary>
    public long[] Encode(string text) => AddsBos && BosId is { } bos ? [bos, .. EncodeText(text)] : EncodeText(text);

    /// <summary>A text's ids without any added token.</summary>
    public abstract long[] EncodeText(string text);

    /// <summary>Ids to text, special tokens left out (invalid UTF-8 becomes U+FFFD).</summary>
    public abstract string Decode(IEnumerable<long> ids);

    private sealed class ByteTokens : TextTokenizer
    {
        public override int Size => ByteTokenizer.VocabularySize;

        public override long[] EncodeText(string text) => ByteTokenizer.EncodeIds(text);

        public override string Decode(IEnumerable<long> ids) => ByteTokenizer.Decode(ids);
    }
}

/// <summary>A Hugging Face tokenizer loaded through Microsoft.ML.Tokenizers (see
/// <see cref="HfTokenizer.Load"/>).</summary>
internal sealed class MlTokenizer(Tokenizer inner, int size) : TextTokenizer
{
    /// <summary>The Microsoft.ML.Tokenizers object.</summary>
    public Tokenizer Inner { get; } = inner;

    public override int Size => size;

    public override long[] EncodeText(string text) => Inner switch
    {
        SentencePieceTokenizer sp => [.. sp.EncodeToIds(text, addBeginningOfSentence: false,
            addEndOfSentence: false).Select(i => (long)i)],
        _ => [.. Inner.EncodeToIds(text).Select(i => (long)i)],
    };

    public override string Decode(IEnumerable<long> ids)
    {
        var kept = ids.Where(i => !SpecialIds.Contains(i)).Select(i => checked((int)i)).ToList();
        return Inner switch
        {
            SentencePieceTokenizer sp => sp.Decode(kept, considerSpecialTokens: false),
            _ => Inner.Decode(kept),
        };
    }
}
