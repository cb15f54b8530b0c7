using System.Text.Json;
using Parquet.Schema;
using Parquet.Serialization;

namespace Toolkit.BatchInference;

/// <summary>
/// Output parts in Apache Parquet. The worker's rows are JSON objects (the id, then each model's outputs); a Parquet
/// part holds the same values as columns: strings as strings, ids as 64-bit integers when every id of the part is a
/// whole number (else as text), other numbers as doubles, arrays of numbers (embeddings) as lists of floats. The schema
/// is taken from the shard's first row (every row of a job has the same fields). Reading a part gives the rows back as
/// JSON, so the exactly-once check reads either format.
/// </summary>
internal static class ParquetParts
{
    /// <summary>Writes the rows (JSON objects, one per element) of one shard as a Parquet file to
    /// <paramref name="output"/>.</summary>
    /// <exception cref="InvalidDataException">A row's fields differ from the first row's.</exception>
    public static void Write(Stream output, IEnumerable<ReadOnlyMemory<byte>> rows)
    {
        var parsed = rows.Select(r => JsonDocument.Parse(r)).ToList();
        try
        {
            // whole-number ids stay whole numbers (a double would round ids past 2^53); a part whose ids are not all
            // whole numbers holds them as text, as the input wrote them
            var wholeIds = parsed.Count > 0 && parsed.All(d => d.RootElement.TryGetProperty("id", out var id)
                && id.ValueKind == JsonValueKind.Number && id.TryGetInt64(out _));
            var fields = parsed.Count == 0 ? [new DataField<string>("id")]
                : parsed[0].RootElement.EnumerateObject().Select(p => p.Name != "id" ? Field(p)
                    : wholeIds ? new DataField<long>("id") : new DataField<string>("id")).ToList();
            var data = parsed.Select(d =>
            {
                var row = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var p in d.RootElement.EnumerateObject())
                    row[p.Name] = p.Name != "id" ? Value(p.Value) : wholeIds ? p.Value.GetInt64()
                        : InferOutput.Id(p.Value);
                if (row.Count != fields.Count || fields.Any(f => !row.ContainsKey(f.Name)))
                    throw new InvalidDataException(
                        $"output row fields ({string.Join(", ", row.Keys)}) differ from the shard's first row " +
                            $"({string.Join(", ", fields.Select(f => f.Name))})");
                return (IDictionary<string, object?>)row;
            }).ToList();
            ParquetSerializer.SerializeUntypedAsync(data, new ParquetSchema(fields), output).GetAwaiter().GetResult();
        }
        finally
        {
            foreach (var d in parsed) d.Dispose();
        }
    }

    /// <summary>The rows of a Parquet part, as JSON objects.</summary>
    public static IEnumerable<JsonElement> Read(string path)
    {
        using var file = File.OpenRead(path);
        var result = ParquetSerializer.DeserializeUntypedAsync(file).GetAwaiter().GetResult();
        foreach (var row in result.Data)
        {
            var bytes = JsonSerializer.SerializeToUtf8Bytes(row.ToDictionary(kv => kv.Key, kv => kv.Value));
            using var json = JsonDocument.Parse(bytes);
            yield return json.RootElement.Clone();
        }
    }

    private static Field Field(JsonProperty p) => p.Value.ValueKind switch
    {
        JsonValueKind.String => new DataField<string>(p.Name),
        JsonValueKind.Number => new DataField<double>(p.Name),
        JsonValueKind.Array when p.Value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.Number)
            => new ListField(p.Name, new DataField<float>("element")),
        var other => throw new InvalidDataException(
            $"output field '{p.Name}' is a JSON {other}; Parquet parts hold strings, numbers and arrays of numbers"),
    };

    private static object Value(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.Array when e.EnumerateArray().All(v => v.ValueKind == JsonValueKind.Number)
            => e.EnumerateArray().Select(v => v.GetSingle()).ToArray(),
        var other => throw new InvalidDataException(
            $"output value is a JSON {other} (or an array of non-numbers); Parquet parts hold strings, numbers and " +
                $"arrays of numbers"),
    };
}
