using System.Security.Cryptography;
using Toolkit.Runtime;
using static TorchSharp.torch;

namespace Toolkit.Checkpoints;

/// <summary>
/// A sharded checkpoint: every rank writes its own slices (<c>rank-R.bin</c>) and rank 0 writes <c>manifest.json</c>
/// describing the plan, the step and every rank's file with its SHA-256.
/// </summary>
/// <remarks>
/// Every slice is a range of one flat buffer whose element order does not depend on the strategy, the rank count or the
/// group size (only the zero padding at the end does), so a checkpoint can be resumed under any plan by re-slicing:
/// each rank reads, from whichever files hold them, the ranges it now owns (<see cref="CheckpointReader"/>). No
/// conversion step is needed.
/// </remarks>
internal sealed record CheckpointManifest(int Format, string Strategy, int Ranks, int GroupSize, string Precision,
    long Parameters, long PaddedParameters,
    long Step, IReadOnlyList<CheckpointShard> Shards)
{
    /// <summary>File name of the manifest.</summary>
    public const string FileName = "manifest.json";

    /// <summary>A hash of the model's parameter names and shapes in module order; a resume under another model of the
    /// same size is refused. Null in checkpoints written before it was recorded.</summary>
    public string? ModelFingerprint { get; init; }

    /// <summary>
    /// The model's parameters as one fp32 vector in module order (the flat layout every plan shares), read from the
    /// rank files that hold them: the fp32 master copy of a mixed-precision checkpoint, else the parameters. This is
    /// what the generation engine and batch inference load from a trained model.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder has no manifest.</exception>
    /// <exception cref="InvalidDataException">A rank file is missing, corrupt or truncated.</exception>
    public static float[] ReadParameters(string directory)
    {
        var manifest = Read(directory);
        var reader = new CheckpointReader(directory, manifest);
        using var flat = zeros(manifest.Parameters);
        reader.Fill(reader.Has("master") ? "master" : "parameters", 0, flat);
        return flat.data<float>().ToArray();
    }

    /// <summary>Reads and checks a manifest.</summary>
    /// <exception cref="FileNotFoundException">The folder has no manifest.</exception>
    public static CheckpointManifest Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException(
            $"{directory} is not a checkpoint: it has no {FileName}.", path);
        return ToolkitJson.Read<CheckpointManifest>(path);
    }
}

/// <summary>One rank's file in a checkpoint.</summary>
/// <param name="Rank">The rank.</param>
/// <param name="File">File name inside the checkpoint folder.</param>
/// <param name="Sha256">Hex SHA-256 of the file.</param>
/// <param name="Components">What the file holds, in order: name and element count.</param>
internal sealed record CheckpointShard(int Rank, string File, string Sha256,
    IReadOnlyList<CheckpointComponent> Components);

/// <summary>One tensor in a rank's file.</summary>
/// <param name="Name">parameters, master (bf16 runs only), exp_avg or exp_avg_sq; gradients are zero between steps and
/// not saved.</param>
/// <param name="DType">Element type.</param>
/// <param name="Offset">Offset of the slice in the model's flat order (module order of the parameters, then the padding
/// of whole-model execution).</param>
/// <param name="Elements">Element count.</param>
internal sealed record CheckpointComponent(string Name, string DType, long Offset, long Elements);

internal static class CheckpointFiles
{
    /// <summary>Bytes per element of a component's element type, as the manifest names it.</summary>
    public static int ElementSize(string dtype) => dtype switch
    {
        nameof(ScalarType.Float32) => 4,
        nameof(ScalarType.BFloat16) or nameof(ScalarType.Float16) => 2,
        nameof(ScalarType.Float64) => 8,
        _ => throw new InvalidDataException($"unknown element type '{dtype}' in a checkpoint manifest"),
    };

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

    /// <summary>Checks a file against the SHA-256 and the byte length its manifest entry gives.</summary>
    public static void Verify(string path, CheckpointShard shard)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path} is missing from the checkpoint.");
        var expected = shard.Components.Sum(c => c.Elements * ElementSize(c.DType));
        var length = new FileInfo(path).Length;
        if (length < expected) throw new InvalidDataException(
            $"{path} is truncated: {length} bytes, the manifest describes {expected}.");
        if (length > expected) throw new InvalidDataException(
            $"{path} has {length - expected} unexpected trailing bytes.");
        string actual;
        using (var stream = File.OpenRead(path)) actual = Convert.ToHexString(SHA256.HashData(stream));
        if (!string.Equals(actual, shard.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException(
                $"{path} is corrupt: its SHA-256 is {actual}, the manifest says {shard.Sha256}.");
    }
}

/// <summary>
/// Reads ranges of a checkpoint's flat buffers, whatever plan wrote it: the pieces of a component that overlap the
/// requested range are read from the rank files that hold them (each file's hash checked once, when first used),
/// converted to the requested element type and copied in place. Ranges past the model's parameters are padding and read
/// as zero.
/// </summary>
internal sealed class CheckpointReader
{
    private readonly string _directory;
    private readonly CheckpointManifest _manifest;
    private readonly HashSet<string> _verified = [];
    private readonly Dictionary<string, List<(CheckpointShard Shard, CheckpointComponent Component,
        long FileOffset)>> _pieces = [];

    public CheckpointReader(string directory, CheckpointManifest manifest)
    {
        _directory = directory;
        _manifest = manifest;
        foreach (var shard in manifest.Shards)
        {
            long position = 0;
            foreach (var c in shard.Components)
            {
                if (!_pieces.TryGetValue(c.Name, out var list)) _pieces[c.Name] = list = [];
                list.Add((shard, c, position));
                position += c.Elements * CheckpointFiles.ElementSize(c.DType);
            }
        }
    }

    /// <summary>Whether the checkpoint holds a component (<c>master</c> only when written in mixed
    /// precision).</summary>
    public bool Has(string name) => _pieces.ContainsKey(name);

    /// <summary>
    /// Fills <paramref name="target"/> (1-D) with elements [<paramref name="offset"/>, offset + numel) of component
    /// <paramref name="name"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing, corrupt or truncated, or the rank files do not cover
    /// the range.</exception>
    public void Fill(string name, long offset, Tensor target)
    {
        if (!_pieces.TryGetValue(name,
            out var pieces)) throw new InvalidDataException($"checkpoint {_directory} has no '{name}' component.");
        var end = offset + target.numel();
        var covered = new List<(long Start, long End)>();
        using var _ = no_grad();
        target.zero_();
        foreach (var (shard, component, fileOffset) in pieces)
        {
            var start = Math.Max(offset, component.Offset);
            // padding stays zero
            var stop = Math.Min(Math.Min(end, component.Offset + component.Elements), _manifest.Parameters);
            if (start >= stop || IsCovered(covered, start, stop)) continue;
            var path = Path.Combine(_directory, shard.File);
            if (_verified.Add(shard.File)) CheckpointFiles.Verify(path, shard);
            var size = CheckpointFiles.ElementSize(component.DType);
            var dtype = Enum.Parse<ScalarType>(component.DType);
            using var file = File.OpenRead(path);
            const long chunk = 1L << 24;                                     // elements per read: bounded host memory
            for (var at = start; at < stop; at += chunk)
            {
                var count = Math.Min(chunk, stop - at);
                var bytes = new byte[count * size];
                file.Position = fileOffset + (at - component.Offset) * size;
                file.ReadExactly(bytes);
                using var host = empty(count, dtype: dtype);
                host.bytes = bytes;
                // converts the element type when the plans' precisions differ; the view is held for the call
                using var part = target.narrow(0, at - offset, count);
                part.copy_(host);
            }
            covered.Add((start, stop));
        }
        var needed = Math.Max(0, Math.Min(end, _manifest.Parameters) - offset);
        var have = Union(covered);
        if (have < needed)
            throw new InvalidDataException(
                $"checkpoint {_directory}: its rank files hold {have} of the {needed} '{name}' elements from " +
                    $"offset {offset}; a rank file's entry is missing from the manifest.");
    }

    private static bool IsCovered(List<(long Start, long End)> covered, long start, long stop) =>
        covered.Any(c => c.Start <= start && c.End >= stop);

    private static long Union(List<(long Start, long End)> ranges)
    {
        long total = 0, reach = long.MinValue;
        foreach (var (start, stop) in ranges.OrderBy(r => r.Start))
        {
            var from = Math.Max(start, reach);
            if (stop > from) total += stop - from;
            reach = Math.Max(reach, stop);
        }
        return total;
    }
}
