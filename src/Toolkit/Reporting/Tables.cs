using System.Collections;
using System.Globalization;
using System.Reflection;

namespace Toolkit.Reporting;

/// <summary>Rows of any type as a <see cref="TextTable"/>: one column per public property, cells as short
/// text.</summary>
public static class Tables
{
    /// <summary>The rows as a table whose columns are <typeparamref name="T"/>'s public properties (anonymous types
    /// and records alike); at most <paramref name="maxRows"/> rows, with a note saying how many were left
    /// out.</summary>
    public static TextTable ToTable<T>(this IEnumerable<T> rows, string title = "", int maxRows = 200)
    {
        var properties = Columns(typeof(T));
        var cells = new List<IReadOnlyList<string>>();
        var total = 0;
        foreach (var row in rows)
        {
            if (++total > maxRows) continue;
            cells.Add(properties.Count == 0 ? [Cell(row)] : [.. properties.Select(p => Value(p, row))]);
        }
        IReadOnlyList<string> columns = properties.Count == 0 ? ["value"] : [.. properties.Select(p => p.Name)];
        return new TextTable(title, columns, cells, total > maxRows ? [$"{total - maxRows} more rows not shown"] : []);
    }

    /// <summary>A value as a cell: numbers to four significant digits (scientific when very large or small), a
    /// missing number empty, a list as its first items.</summary>
    public static string Cell(object? value) => value switch
    {
        null => "",
        string s => s,
        double d => Number(d),
        float f => Number(f),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable list => string.Join(", ", list.Cast<object?>().Take(8).Select(Cell)) +
            (list.Cast<object?>().Skip(8).Any() ? ", ..." : ""),
        _ => value.ToString() ?? "",
    };

    /// <summary>The properties of <paramref name="type"/> that are a row's columns: public, readable, not
    /// indexers.</summary>
    internal static List<PropertyInfo> Columns(Type type) => [.. type.GetProperties(BindingFlags.Public |
        BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0)];

    /// <summary>Property <paramref name="property"/> of <paramref name="row"/> as a cell; a getter that throws shows
    /// its error instead of failing the whole table.</summary>
    internal static string Value(PropertyInfo property, object? row)
    {
        try
        {
            return Cell(property.GetValue(row));
        }
        catch (TargetInvocationException e)
        {
            return $"({e.InnerException?.GetType().Name ?? "error"}: {e.InnerException?.Message})";
        }
    }

    private static string Number(double x) =>
        !double.IsFinite(x) ? (double.IsNaN(x) ? "" : x > 0 ? "∞" : "−∞")
        : x == 0 ? "0"
        : Math.Abs(x) >= 1e6 || Math.Abs(x) < 1e-3 ? x.ToString("0.###e0", CultureInfo.InvariantCulture)
        : x.ToString("G4", CultureInfo.InvariantCulture);
}
