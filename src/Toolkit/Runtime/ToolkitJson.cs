using System.Text.Json;
using System.Text.Json.Serialization;

namespace Toolkit.Runtime;

/// <summary>
/// The one JSON convention of every file the toolkit writes and reads (config, metrics, results, benchmarks, checkpoint
/// manifests, per-rank outcomes): camelCase names, enums as strings (an enum member's
/// <see cref="JsonStringEnumMemberNameAttribute"/> when it has one, else its camelCase name), numbers as numbers.
/// Change it here and every file follows.
/// </summary>
internal static class ToolkitJson
{
    /// <summary>Indented, for files people read (config.json, result.json, manifests, benchmarks).</summary>
    public static JsonSerializerOptions Options { get; } = Create(indented: true);

    /// <summary>One object per line, for streams (metrics.jsonl).</summary>
    public static JsonSerializerOptions Compact { get; } = Create(indented: false);

    /// <summary>Serialises <paramref name="value"/> (indented) to <paramref name="path"/>, through a temporary file so
    /// readers never see half a file.</summary>
    public static void Write<T>(string path, T value)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(value, Options));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reads a file written by <see cref="Write{T}"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not JSON of the expected shape; the message names the
    /// file.</exception>
    public static T Read<T>(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist.", path);
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path),
                Options) ?? throw new JsonException("the file holds null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid {typeof(T).Name}: {e.Message}", e);
        }
    }

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = indented,
            // Files, not HTML: keep + < > ' readable.
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase), new MissingNumberConverter(),
                new MissingSingleConverter() },
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

/// <summary>
/// A number that was not measured (NaN) or overflowed (infinity) is written as <c>null</c>, which every JSON reader
/// takes as missing (pandas reads the column as numbers); <c>null</c>, and the strings "NaN" and "Infinity" of files
/// written before, read back as NaN and infinity.
/// </summary>
internal sealed class MissingNumberConverter : JsonConverter<double>
{
    public override bool HandleNull => true;

    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
    {
        JsonTokenType.Null => double.NaN,
        JsonTokenType.String => reader.GetString() switch
        {
            "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, "-Infinity" => double.NegativeInfinity,
            var text => throw new JsonException($"'{text}' is not a number"),
        },
        _ => reader.GetDouble(),
    };

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (double.IsFinite(value)) writer.WriteNumberValue(value);
        else writer.WriteNullValue();
    }
}

/// <summary>The same for <see cref="float"/>: NaN and infinities are written as <c>null</c> and read back.</summary>
internal sealed class MissingSingleConverter : JsonConverter<float>
{
    private static readonly MissingNumberConverter Double = new();

    public override bool HandleNull => true;

    public override float Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        (float)Double.Read(ref reader, typeof(double), options);

    public override void Write(Utf8JsonWriter writer, float value, JsonSerializerOptions options)
    {
        if (float.IsFinite(value)) writer.WriteNumberValue(value);
        else writer.WriteNullValue();
    }
}
