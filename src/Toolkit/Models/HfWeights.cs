using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Toolkit.Models;

/// <summary>
/// The weights of a Hugging Face folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c>'s <c>weight_map</c>. Only headers are read on open; tensors are read one at a
/// time (or an element range of one), so loading never holds two copies of a model, and a sharded trainer's rank reads
/// only its slice.
/// </summary>
public sealed class HfWeights : IDisposable
{
    /// <summary>The single-file name.</summary>
    public const string SingleFile = "model.safetensors";

    /// <summary>The shard index's name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _byName;

    private HfWeights(List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName) => (_files,
        _byName) = (files, byName);

    /// <summary>Every tensor's name (the checkpoint's own names).</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>The files, in index order.</summary>
    internal IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Opens the folder's weight files and reads their headers.</summary>
    /// <exception cref="FileNotFoundException">Neither file exists, or the index names a missing shard.</exception>
    /// <exception cref="InvalidDataException">A malformed index or file; the message names it.</exception>
    public static HfWeights Open(string folder)
    {
        var index = Path.Combine(folder, IndexFile);
        var single = Path.Combine(folder, SingleFile);
        var files = new List<SafetensorsFile>();
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            if (File.Exists(index))
            {
                var map = ReadIndex(index);
                foreach (var shard in map.Values.Distinct())
                {
                    var file = SafetensorsFile.Open(Path.Combine(folder, shard));
                    files.Add(file);
                    foreach (var (name, _) in map.Where(e => e.Value == shard))
                        byName[name] = file.Tensors.ContainsKey(name) ? file
                            : throw new InvalidDataException(
                                $"{index}: weight_map puts '{name}' in {shard}, which has no such tensor.");
                }
            }
            else if (File.Exists(single))
            {
                var file = SafetensorsFile.Open(single);
                files.Add(file);
                foreach (var name in file.Tensors.Keys) byName[name] = file;
            }
            else
            {
                throw new FileNotFoundException($"{folder} has no weights: neither {SingleFile} nor {IndexFile}.",
                    single);
            }
            return new HfWeights(files, byName);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> ReadIndex(string path)
    {
        try
        {
            var map = (JsonNode.Parse(File.ReadAllText(path))?["weight_map"] as JsonObject)
                ?? throw new InvalidDataException($"{path}: key 'weight_map' is missing.");
            return map.ToDictionary(e => e.Key,
                e => e.Value?.GetValue<string>()
                    ?? throw new InvalidDataException($"{path}: weight_map['{e.Key}'] is not a file name."));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not a valid safetensors index ({e.Message}).", e);
        }
    }

    /// <summary>Whether the checkpoint holds a tensor.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>A tensor's header entry and its file.</summary>
    /// <exception cref="InvalidDataException">No such tensor; the message names the folder and the tensor.</exception>
    internal (SafetensorsFile File, SafetensorsEntry Entry) Entry(string name) =>
        _byName.TryGetValue(name, out var file)
        ? (file, file.Tensors[name])
        : throw new InvalidDataException(
            $"{Path.GetDirectoryName(_files[0].Path)}: the weights have no tensor '{name}'.");

    /// <summary>Reads a whole tensor as <paramref name="dtype"/>.</summary>
    public Tensor Read(string name, ScalarType dtype) => Entry(name).File.Read(name, dtype);

    /// <summary>Reads elements [start, start + destination's size) of a tensor (row-major) into
    /// <paramref name="destination"/>.</summary>
    public void ReadElements(string name, long start, Tensor destination) => Entry(name).File.ReadElements(name, start,
        destination);

    /// <summary>
    /// Writes tensors as a Hugging Face folder's weights: <c>model.safetensors</c>, or shards of at most
    /// <paramref name="maxShardBytes"/> (<c>model-00001-of-0000N.safetensors</c>) with their index. The tensors are
    /// produced one at a time by <paramref name="produce"/> (called in layout order) and disposed once written.
    /// </summary>
    public static void Write(string folder, IReadOnlyList<(string Name, ScalarType DType, long[] Shape)> layout,
        Func<int, Tensor> produce,
        long maxShardBytes = 4L << 30)
    {
        static long Bytes((string, ScalarType DType, long[] Shape) t) =>
            t.Shape.Aggregate(1L, (a, b) => a * b) * (t.DType == ScalarType.Float32 ? 4 : 2);
        var shards = new List<List<int>> { new() };
        long size = 0;
        for (var i = 0; i < layout.Count; i++)
        {
            if (shards[^1].Count > 0 && size + Bytes(layout[i]) > maxShardBytes) (shards, size) = ([.. shards, []], 0);
            shards[^1].Add(i);
            size += Bytes(layout[i]);
        }
        foreach (var stale in Directory.EnumerateFiles(folder, "model*.safetensors*")) File.Delete(stale);
        if (shards.Count == 1)
        {
            SafetensorsFile.Write(Path.Combine(folder, SingleFile), layout, shards[0].Select(produce));
            return;
        }
        var map = new JsonObject();
        for (var s = 0; s < shards.Count; s++)
        {
            var name = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsFile.Write(Path.Combine(folder, name), [.. shards[s].Select(i => layout[i])],
                shards[s].Select(produce));
            foreach (var i in shards[s]) map[layout[i].Name] = name;
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = layout.Sum(Bytes) },
            ["weight_map"] = map };
        Runtime.ToolkitJson.Write(Path.Combine(folder, IndexFile), index);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
