using System.Text;
using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>One input record as a worker reads it: its position, and its id and text, or why it cannot be
/// used.</summary>
/// <param name="Index">Position in the input (0-based); shards are ranges of it.</param>
/// <param name="Id">The record's id, or null when it could not be read.</param>
/// <param name="Text">The text the models read, or null when the record is malformed.</param>
/// <param name="Error">Why the record is malformed (it is quarantined with this reason), or null.</param>
public sealed record InputRecord(long Index, string? Id, string? Text, string? Error)
{
    /// <summary>True when the input holds the id as a number (a JSON number, a Parquet integer): the output writes it
    /// as that number, <see cref="Id"/> being its text.</summary>
    public bool NumericId { get; init; }

    /// <summary>The input columns carried to the output (<c>--keep-columns</c>), each as its JSON value.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Columns { get; init; } = [];
}

/// <summary>
/// An input file read as numbered records, so a shard (first record, count) can be read by any worker that sees the
/// file. A malformed record is still a record: it keeps its number and comes back with its error.
/// </summary>
public abstract class RecordSource
{
    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>How many records the file holds.</summary>
    public long Count { get; private protected set; }

    private protected RecordSource(string path) => Path = System.IO.Path.GetFullPath(path);

    /// <summary>Input columns carried to the output (<c>--keep-columns</c>).</summary>
    private protected IReadOnlyList<string> Keep { get; set; } = [];

    /// <summary>Opens the input named by a job spec.</summary>
    public static RecordSource Open(InferJobOptions spec) => spec.Data.ResolveFormat() switch
    {
        InputFormat.Jsonl => new JsonlSource(spec.Data.Input!, spec.Data.IdField, spec.Data.TextField,
            spec.Data.KeptColumns),
        InputFormat.Csv => new CsvSource(spec.Data.Input!, spec.Data.IdField, spec.Data.TextField,
            spec.Data.KeptColumns),
        InputFormat.Parquet => new ParquetSource(spec.Data.Input!, spec.Data.IdField, spec.Data.TextField,
            spec.Data.KeptColumns),
        var f => throw new ArgumentOutOfRangeException(nameof(spec), f, "unknown input format"),
    };

    /// <summary>
    /// A well-formed record with the kept columns' values added (<paramref name="value"/> gives a column's value, or
    /// null when the record lacks it); a record lacking one, or holding in one anything but a string, a number or an
    /// array of numbers (what both output formats hold), becomes malformed, naming the column.
    /// </summary>
    private protected InputRecord Carry(InputRecord record, Func<string, JsonElement?> value)
    {
        if (Keep.Count == 0 || record.Error is not null) return record;
        var columns = new List<KeyValuePair<string, string>>(Keep.Count);
        foreach (var name in Keep)
        {
            var found = value(name);
            var why = found switch
            {
                null or { ValueKind: JsonValueKind.Null } => $"no '{name}' (--keep-columns)",
                { ValueKind: JsonValueKind.String or JsonValueKind.Number } => null,
                { ValueKind: JsonValueKind.Array } v when v.EnumerateArray().All(e => e.ValueKind ==
                    JsonValueKind.Number) => null,
                { } v => $"'{name}' (--keep-columns) is a JSON {v.ValueKind}; a kept column holds a string, a " +
                    "number or an array of numbers",
            };
            if (why is not null) return record with { Text = null, Error = why };
            columns.Add(new(name, found!.Value.GetRawText()));
        }
        return record with { Columns = columns };
    }

    /// <summary>Reads records [first, first + count).</summary>
    public IEnumerable<InputRecord> Read(long first, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        if (first + count > Count) throw new ArgumentOutOfRangeException(nameof(count),
            $"records {first}..{first + count} are past the input's {Count}");
        return ReadRange(first, count);
    }

    /// <summary>Reads records [first, first + count), already checked to lie inside the file.</summary>
    private protected abstract IEnumerable<InputRecord> ReadRange(long first, long count);
}

/// <summary>
/// A text input of one record per line (or per CSV row). Record boundaries are found once per process by one scan;
/// every 1024th record's byte offset is kept, so reading a shard seeks close to it instead of rereading the file.
/// </summary>
internal abstract class LineRecordSource : RecordSource
{
    private const int Stride = 1024;
    private readonly List<long> _offsets = [];

    private protected LineRecordSource(string path) : base(path) { }

    private protected override IEnumerable<InputRecord> ReadRange(long first, long count)
    {
        using var file = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        file.Position = _offsets[(int)(first / Stride)];
        var scanner = new Scanner(file, QuoteAware);
        for (var skip = first % Stride; skip > 0; skip--) scanner.Next();
        for (long i = 0; i < count; i++)
        {
            var bytes = scanner.Next()
                ?? throw new InvalidDataException($"{Path} changed while the job ran: record {first + i} is gone");
            yield return Parse(first + i, bytes);
        }
    }

    /// <summary>Scans the file once for record boundaries.</summary>
    private protected void Index()
    {
        using var file = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        Span<byte> bom = stackalloc byte[3];
        // a UTF-8 byte order mark (Excel writes one) is not data
        file.Position = file.Read(bom) == 3 && bom.SequenceEqual("\uFEFF"u8) ? 3 : 0;
        var scanner = new Scanner(file, QuoteAware);
        SkipHeader(scanner);
        long n = 0;
        while (true)
        {
            if (n % Stride == 0) _offsets.Add(scanner.Position);
            if (scanner.Next() is null) break;
            n++;
        }
        Count = n;
    }

    /// <summary>True when newlines inside double quotes do not end a record (CSV).</summary>
    private protected abstract bool QuoteAware { get; }

    /// <summary>Consumes a header, if the format has one.</summary>
    private protected virtual void SkipHeader(Scanner scanner) { }

    /// <summary>Turns one record's bytes into a record.</summary>
    private protected abstract InputRecord Parse(long index, ReadOnlyMemory<byte> bytes);

    /// <summary>Reads records (lines, or CSV rows whose quoted fields may span lines) as byte ranges.</summary>
    private protected sealed class Scanner(Stream stream, bool quoteAware)
    {
        private readonly byte[] _buffer = new byte[1 << 16];
        private int _start, _end;
        private readonly long _base = stream.Position;
        private long _consumed;

        /// <summary>File offset of the next record.</summary>
        public long Position => _base + _consumed;

        /// <summary>The next record without its line ending, or null at the end of the file.</summary>
        public ReadOnlyMemory<byte>? Next()
        {
            var record = new MemoryStream();
            var quoted = false;
            var any = false;
            while (true)
            {
                if (_start == _end && !Fill()) return any ? Trim(record) : (ReadOnlyMemory<byte>?)null;
                any = true;
                var b = _buffer[_start++];
                _consumed++;
                if (b == (byte)'"' && quoteAware) quoted = !quoted;
                else if (b == (byte)'\n' && !quoted) return Trim(record);
                record.WriteByte(b);
            }
        }

        private static ReadOnlyMemory<byte> Trim(MemoryStream record)
        {
            var bytes = record.GetBuffer().AsMemory(0, (int)record.Length);
            return bytes.Length > 0 && bytes.Span[^1] == (byte)'\r' ? bytes[..^1] : bytes;
        }

        private bool Fill()
        {
            _start = 0;
            _end = stream.Read(_buffer, 0, _buffer.Length);
            return _end > 0;
        }
    }
}

/// <summary>JSON Lines: each line one object with the id and text fields (the id a string or a number).</summary>
internal sealed class JsonlSource : LineRecordSource
{
    private readonly string _idField, _textField;

    /// <summary>Indexes <paramref name="path"/>.</summary>
    public JsonlSource(string path, string idField, string textField, IReadOnlyList<string>? keep = null) : base(path)
    {
        (_idField, _textField, Keep) = (idField, textField, keep ?? []);
        Index();
    }

    private protected override bool QuoteAware => false;

    private protected override InputRecord Parse(long index, ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Span.Trim(" \t"u8).IsEmpty) return new(index, null, null, "empty line");
        try
        {
            using var json = JsonDocument.Parse(bytes);
            if (json.RootElement.ValueKind != JsonValueKind.Object) return new(index, null, null,
                $"line is a JSON {json.RootElement.ValueKind}, not an object");
            var hasId = json.RootElement.TryGetProperty(_idField, out var i);
            var numeric = hasId && i.ValueKind == JsonValueKind.Number;
            string? id = !hasId ? null : numeric ? i.GetRawText()
                : i.ValueKind == JsonValueKind.String ? i.GetString() : null;
            if (string.IsNullOrEmpty(id)) return new(index, null, null, $"no '{_idField}' (a string or number)");
            if (!json.RootElement.TryGetProperty(_textField, out var t) || t.ValueKind != JsonValueKind.String)
                return new(index, id, null, $"no '{_textField}' string") { NumericId = numeric };
            var root = json.RootElement;
            return Carry(new(index, id, t.GetString(), null) { NumericId = numeric },
                name => root.TryGetProperty(name, out var v) ? v : null);
        }
        catch (JsonException e)
        {
            return new(index, null, null, $"not JSON: {e.Message}");
        }
    }
}

/// <summary>RFC 4180 CSV with a header row naming the columns; quoted fields may hold commas, doubled quotes and
/// newlines.</summary>
internal sealed class CsvSource : LineRecordSource
{
    private readonly string _idField, _textField;
    private int _id = -1, _text = -1, _columns;
    private Dictionary<string, int> _header = [];

    /// <summary>Indexes <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The header lacks the id, text or a kept column.</exception>
    public CsvSource(string path, string idField, string textField, IReadOnlyList<string>? keep = null) : base(path)
    {
        (_idField, _textField, Keep) = (idField, textField, keep ?? []);
        Index();
    }

    private protected override bool QuoteAware => true;

    private protected override void SkipHeader(Scanner scanner)
    {
        var header = scanner.Next() is { } h ? Fields(h.Span) : null;
        if (header is null) throw new InvalidDataException(
            $"{Path} is empty: a CSV input needs a header row naming the '{_idField}' and '{_textField}' columns");
        (_id, _text, _columns) = (header.IndexOf(_idField), header.IndexOf(_textField), header.Count);
        var missing = _id < 0 ? _idField : _textField;
        if (_id < 0 || _text < 0)
            throw new InvalidDataException(
                $"{Path}'s header ({string.Join(",", header)}) lacks the column '{missing}' " +
                "(--id-field / --text-field)");
        if (Keep.FirstOrDefault(k => !header.Contains(k)) is { } absent) throw new InvalidDataException(
            $"{Path}'s header ({string.Join(",", header)}) lacks the column '{absent}' (--keep-columns)");
        _header = Keep.ToDictionary(k => k, k => header.IndexOf(k));
    }

    private protected override InputRecord Parse(long index, ReadOnlyMemory<byte> bytes)
    {
        var fields = Fields(bytes.Span);
        if (fields is null) return new(index, null, null, "unbalanced quotes");
        if (fields.Count != _columns) return new(index, fields.Count > _id ? NullIfEmpty(fields[_id]) : null, null,
            $"{fields.Count} fields, the header has {_columns}");
        var id = NullIfEmpty(fields[_id]);
        return id is null ? new(index, null, null, $"empty '{_idField}'") : Carry(new(index, id, fields[_text], null),
            name => JsonSerializer.SerializeToElement(fields[_header[name]]));
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    /// <summary>Splits one CSV row; null when its quotes do not balance.</summary>
    internal static List<string>? Fields(ReadOnlySpan<byte> row)
    {
        var text = Encoding.UTF8.GetString(row);
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c != '"') field.Append(c);
                else if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else quoted = false;
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        if (quoted) return null;
        fields.Add(field.ToString());
        return fields;
    }
}
