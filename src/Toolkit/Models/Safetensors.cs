using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's name (<c>model.layers.0.self_attn.q_proj.weight</c>).</param>
/// <param name="DType">The file's element type name (<c>F32</c>, <c>BF16</c>, <c>F16</c>).</param>
/// <param name="Shape">The shape.</param>
/// <param name="Begin">Offset of its first byte after the header.</param>
/// <param name="End">Offset after its last byte.</param>
internal sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Elements in the tensor.</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file (Hugging Face's weight format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data), read by random access.
/// </summary>
/// <remarks>
/// The toolkit reads and writes the format itself rather than through TorchSharp.PyBridge's <c>Safetensors</c>, whose
/// reader fits a whole-file load but not what the toolkit needs: its header index is internal (names, shapes and dtypes
/// are checked against <c>config.json</c> before any data is read), it reads whole tensors only (a sharded trainer's
/// rank reads just the element range its strategy keeps, so a GGG rank never holds the whole model), and its writer
/// omits the <c>__metadata__ {"format": "pt"}</c> that transformers checks when it loads a folder.
/// </remarks>
internal sealed class SafetensorsFile : IDisposable
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> Types = new(StringComparer.Ordinal)
    {
        ["F32"] = (ScalarType.Float32, 4), ["BF16"] = (ScalarType.BFloat16, 2), ["F16"] = (ScalarType.Float16, 2),
    };

    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    private SafetensorsFile(string path, SafeFileHandle handle, long dataStart,
        Dictionary<string, SafetensorsEntry> entries)
    {
        (Path, _handle, _dataStart, _entries) = (path, handle, dataStart, entries);
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The tensors, by name, in header order.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Tensors => _entries;

    /// <summary>Opens a file and reads its header (no tensor data).</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The header is malformed, names an unsupported dtype, or a range lies
    /// outside the file; the message names the file and the tensor.</exception>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist.", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var length = RandomAccess.GetLength(handle);
            Span<byte> prefix = stackalloc byte[8];
            if (length < 8 || RandomAccess.Read(handle, prefix, 0) != 8) throw Bad(path, "it is shorter than a header");
            var headerLength = BitConverter.ToInt64(prefix);
            if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > length)
                throw Bad(path, $"its header length {headerLength} does not fit the file ({length} bytes)");
            var header = new byte[headerLength];
            ReadExactly(handle, header, 8, path);
            var entries = ParseHeader(path, header, length - 8 - headerLength);
            return new SafetensorsFile(path, handle, 8 + headerLength, entries);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The tensor's element type as TorchSharp names it.</summary>
    public static ScalarType TypeOf(SafetensorsEntry entry) => Types[entry.DType].Type;

    /// <summary>Reads a whole tensor into a new CPU tensor of <paramref name="dtype"/> (default: the file's).</summary>
    /// <exception cref="KeyNotFoundException">No such tensor; the message names the file.</exception>
    public Tensor Read(string name, ScalarType? dtype = null)
    {
        var entry = Entry(name);
        var raw = empty(entry.Shape, dtype: TypeOf(entry));
        try
        {
            ReadInto(entry, 0, raw);
            if (dtype is not { } wanted || wanted == raw.dtype) return raw;
            using (raw) return raw.to(wanted);
        }
        catch
        {
            raw.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads elements [<paramref name="start"/>, start + destination's size) of a tensor, in its row-major order, into
    /// <paramref name="destination"/> (a contiguous CPU tensor of any floating dtype: the values are converted).
    /// </summary>
    public void ReadElements(string name, long start, Tensor destination)
    {
        var entry = Entry(name);
        var count = destination.numel();
        if (start < 0 || start + count > entry.Elements)
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"elements {start}..{start + count} are outside {name} ({entry.Elements})");
        if (destination.dtype == TypeOf(entry)) { ReadInto(entry, start, destination); return; }
        using var scope = NewDisposeScope();
        var raw = empty(count, dtype: TypeOf(entry));
        ReadInto(entry, start, raw);
        using var _ = no_grad();
        destination.view(-1).copy_(raw);
    }

    private SafetensorsEntry Entry(string name) => _entries.TryGetValue(name, out var entry)
        ? entry : throw new KeyNotFoundException($"{Path} has no tensor '{name}'.");

    /// <summary>Reads elements from <paramref name="start"/> straight into <paramref name="target"/>'s memory (the
    /// file's dtype).</summary>
    private void ReadInto(SafetensorsEntry entry, long start, Tensor target)
    {
        var size = Types[entry.DType].Size;
        // the views go here; target stays
        using var scope = NewDisposeScope();
        var flat = target.view(-1);
        // spans are int-sized: 256 M elements at a time
        const long chunk = 1L << 28;
        for (long done = 0; done < flat.numel(); done += chunk)
        {
            using var piece = flat.narrow(0, done, Math.Min(chunk, flat.numel() - done));
            ReadExactly(_handle, piece.bytes, _dataStart + entry.Begin + (start + done) * size, Path);
        }
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path)
    {
        while (buffer.Length > 0)
        {
            var read = RandomAccess.Read(handle, buffer, offset);
            if (read <= 0) throw Bad(path, $"it ends before byte {offset + buffer.Length}");
            buffer = buffer[read..];
            offset += read;
        }
    }

    private static Dictionary<string, SafetensorsEntry> ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(header) as JsonObject ?? throw Bad(path, "its header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad(path, $"its header is not JSON ({e.Message})");
        }
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        foreach (var (name, node) in root)
        {
            // free-form text (transformers writes {"format": "pt"}); nothing the reader needs
            if (name == "__metadata__") continue;
            try
            {
                var dtype = node!["dtype"]!.GetValue<string>();
                var shape = node["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offsets = node["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                if (!Types.TryGetValue(dtype, out var type))
                    throw Bad(path,
                        $"tensor '{name}' has dtype {dtype}; the toolkit reads {string.Join(", ", Types.Keys)}");
                var entry = new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
                if (offsets.Length != 2 || entry.Begin < 0 || entry.End > dataLength
                    || entry.End - entry.Begin != entry.Elements * type.Size)
                    throw Bad(path,
                        $"tensor '{name}' has the byte range [{entry.Begin}, {entry.End}), which does not hold " +
                        $"{entry.Elements} {dtype} values inside the file's {dataLength} data bytes");
                entries[name] = entry;
            }
            catch (Exception e) when (
                e is NullReferenceException or InvalidOperationException or FormatException or IndexOutOfRangeException)
            {
                throw Bad(path, $"tensor '{name}' lacks a valid dtype, shape or data_offsets");
            }
        }
        return entries;
    }

    private static InvalidDataException Bad(string path,
        string why) => new($"{path} is not a valid safetensors file: {why}.");

    /// <inheritdoc/>
    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Writes tensors to a safetensors file: the header first (from the names, shapes and dtypes alone), then each
    /// tensor as <paramref name="tensors"/> yields it, so a caller can produce them one at a time. The header carries
    /// <c>__metadata__ {"format": "pt"}</c> and is padded to a multiple of 8 bytes, as the reference writer does.
    /// </summary>
    /// <param name="path">The file (replaced through a temporary file).</param>
    /// <param name="layout">Name, dtype and shape of every tensor, in file order.</param>
    /// <param name="tensors">The tensors in the same order (CPU or not); each is disposed once written.</param>
    public static void Write(string path, IReadOnlyList<(string Name, ScalarType DType, long[] Shape)> layout,
        IEnumerable<Tensor> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, dtype, shape) in layout)
        {
            var size = Types.Values.First(t => t.Type == dtype).Size * shape.Aggregate(1L, (a, b) => a * b);
            header[name] = new JsonObject
            {
                ["dtype"] = Types.First(t => t.Value.Type == dtype).Key,
                ["shape"] = new JsonArray([.. shape.Select(d => (JsonNode)d)]),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var text = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (text.Length + 7) / 8 * 8;
        var temporary = path + ".tmp";
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            file.Write(BitConverter.GetBytes((long)padded));
            file.Write(text);
            for (var i = text.Length; i < padded; i++) file.WriteByte((byte)' ');
            var index = 0;
            foreach (var tensor in tensors)
            {
                var (name, dtype, shape) = layout[index++];
                if (tensor.dtype != dtype || !tensor.shape.SequenceEqual(shape))
                    throw new ArgumentException(
                        $"tensor {name} is {tensor.dtype} [{string.Join(", ", tensor.shape)}]; the layout " +
                            $"says {dtype} [{string.Join(", ", shape)}]");
                using (tensor)
                using (NewDisposeScope())                                               // a copy made here goes here
                    WriteBytes(file, tensor.cpu().contiguous());
            }
            if (index != layout.Count) throw new ArgumentException(
                $"{layout.Count} tensors were declared and {index} given.", nameof(tensors));
        }
        File.Move(temporary, path, overwrite: true);
    }

    private static void WriteBytes(Stream stream, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var flat = tensor.view(-1);
        const long chunk = 1L << 28;
        for (long done = 0; done < flat.numel(); done += chunk)
        {
            using var piece = flat.narrow(0, done, Math.Min(chunk, flat.numel() - done));
            stream.Write(piece.bytes);
        }
    }
}
