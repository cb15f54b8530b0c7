using System.Text;

namespace Toolkit.Models;

/// <summary>
/// UTF-8 bytes as tokens (vocabulary 256), the base alphabet of GPT-2's byte-level BPE without its merges: any text
/// encodes, nothing is unknown, and decoding inverts encoding exactly.
/// </summary>
internal static class ByteTokenizer
{
    /// <summary>Vocabulary size.</summary>
    public const int VocabularySize = 256;

    /// <summary>Text to token ids.</summary>
    public static byte[] Encode(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Token ids to text (invalid UTF-8 sequences become U+FFFD).</summary>
    public static string Decode(ReadOnlySpan<byte> tokens) => Encoding.UTF8.GetString(tokens);

    /// <summary>Text to token ids as the models take them (int64).</summary>
    public static long[] EncodeIds(string text) => [.. Encode(text).Select(b => (long)b)];

    /// <summary>Model token ids to text.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the byte vocabulary.</exception>
    public static string Decode(IEnumerable<long> ids) =>
        Decode([.. ids.Select(id
            => id is >= 0 and < VocabularySize ? (byte)id : throw new ArgumentOutOfRangeException(nameof(ids), id,
                $"is not a byte token (vocabulary {VocabularySize})"))]);
}
