using Toolkit.Reporting;

namespace Toolkit.Cli;

/// <summary>Prints a result's facts as aligned lines (the same rows the notebook table and the HTML report
/// show).</summary>
internal static class Facts
{
    public static void Print(IFacts result)
    {
        Console.WriteLine(result.Title);
        var rows = result.Facts();
        var width = rows.Max(r => r.Name.Length);
        foreach (var (name, value) in rows) Console.WriteLine($"  {name.PadRight(width)}  {value}");
    }

    /// <summary>Writes <paramref name="value"/> as JSON when <paramref name="file"/> is given.</summary>
    public static void WriteJson<T>(FileInfo? file, T value)
    {
        if (file is not null) Toolkit.Runtime.ToolkitJson.Write(file.FullName, value);
    }
}
