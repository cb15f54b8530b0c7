using System.Security.Cryptography;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Paro;

/// <summary>
/// A sharded checkpoint: every rank writes its own slices (<c>rank-R.bin</c>) and rank 0 writes
/// <c>manifest.json</c> describing the plan, the step and every rank's file with its SHA-256.
/// Loading checks that the plan matches; resuming under another strategy or rank count
/// (re-sharding) is not supported and is refused with that reason.
/// </summary>
public sealed record CheckpointManifest(int Format, string Strategy, int Ranks, int GroupSize, string Precision, long Parameters, long PaddedParameters,
    long Step, IReadOnlyList<CheckpointShard> Shards)
{
    /// <summary>File name of the manifest.</summary>
    public const string FileName = "manifest.json";

    /// <summary>Reads and checks a manifest.</summary>
    /// <exception cref="FileNotFoundException">The folder has no manifest.</exception>
    public static CheckpointManifest Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{directory} is not a checkpoint: it has no {FileName}.", path);
        return ToolkitJson.Read<CheckpointManifest>(path);
    }
}

/// <summary>One rank's file in a checkpoint.</summary>
/// <param name="Rank">The rank.</param>
/// <param name="File">File name inside the checkpoint folder.</param>
/// <param name="Sha256">Hex SHA-256 of the file.</param>
/// <param name="Components">What the file holds, in order: name and element count.</param>
public sealed record CheckpointShard(int Rank, string File, string Sha256, IReadOnlyList<CheckpointComponent> Components);

/// <summary>One tensor in a rank's file.</summary>
/// <param name="Name">parameters, master (bf16 runs only), exp_avg or exp_avg_sq; gradients are zero between steps and not saved.</param>
/// <param name="DType">Element type.</param>
/// <param name="Offset">Offset of the slice in the padded flat buffer.</param>
/// <param name="Elements">Element count.</param>
public sealed record CheckpointComponent(string Name, string DType, long Offset, long Elements);

internal static class CheckpointFiles
{
    /// <summary>Writes the named tensors (CPU copies) one after another; returns the SHA-256.</summary>
    public static string Write(string path, IEnumerable<Tensor> tensors)
    {
        using (var file = File.Create(path))
            foreach (var t in tensors)
            {
                using var host = t.cpu().contiguous();
                file.Write(host.bytes);
            }
        return Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
    }

    /// <summary>Reads the tensors back in place, after checking the hash.</summary>
    public static void Read(string path, string sha256, IEnumerable<Tensor> tensors)
    {
        var bytes = File.ReadAllBytes(path);
        var actual = Convert.ToHexString(SHA256.HashData(bytes));
        if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{path} is corrupt: its SHA-256 is {actual}, the manifest says {sha256}.");
        var offset = 0;
        foreach (var t in tensors)
        {
            var length = checked((int)(t.numel() * t.element_size()));
            if (offset + length > bytes.Length) throw new InvalidDataException($"{path} is truncated.");
            using var host = empty(t.shape, dtype: t.dtype);
            host.bytes = bytes.AsSpan(offset, length);
            using (no_grad()) t.copy_(host);
            offset += length;
        }
        if (offset != bytes.Length) throw new InvalidDataException($"{path} has {bytes.Length - offset} unexpected trailing bytes.");
    }
}
