using System.Globalization;
using System.Text.RegularExpressions;

namespace Toolkit.Runtime;

/// <summary>Parses the units the collective tools accept: sizes (<c>64MiB</c>), bit rates (<c>1gbit</c>, tc's spelling)
/// and durations (<c>0.2ms</c>).</summary>
internal static partial class Units
{
    /// <summary>Bytes from <c>N</c>, <c>NB</c>, <c>NKiB</c>, <c>NMiB</c>, <c>NGiB</c>, <c>NKB</c>, <c>NMB</c>,
    /// <c>NGB</c>.</summary>
    /// <exception cref="FormatException">The text is not a size; the message gives the accepted forms.</exception>
    public static long ParseBytes(string text)
    {
        var (value, unit) = Split(text, "a size such as 4096, 64KiB, 1MiB or 2GiB");
        double scale = unit switch
        {
            "" or "b" => 1, "kib" => 1024, "mib" => 1 << 20, "gib" => 1 << 30, "kb" => 1e3, "mb" => 1e6, "gb" => 1e9,
            _ => throw new FormatException(
                $"'{text}' has an unknown size unit '{unit}': use B, KiB, MiB, GiB, KB, MB or GB."),
        };
        return checked((long)(value * scale));
    }

    /// <summary>Bytes per second from a bit rate in tc's spelling: <c>100mbit</c>, <c>1gbit</c>, <c>10gbit</c>,
    /// <c>500kbit</c>.</summary>
    public static double ParseBitRate(string text)
    {
        var (value, unit) = Split(text, "a rate such as 100mbit or 1gbit");
        double bits = unit switch
        {
            "bit" => 1, "kbit" => 1e3, "mbit" => 1e6, "gbit" => 1e9,
            _ => throw new FormatException($"'{text}' has an unknown rate unit '{unit}': use bit, kbit, mbit or gbit."),
        };
        return value * bits / 8;
    }

    /// <summary>Seconds from <c>0.2ms</c>, <c>50us</c>, <c>1s</c>.</summary>
    public static double ParseDuration(string text)
    {
        var (value, unit) = Split(text, "a duration such as 0.2ms, 50us or 1s");
        return unit switch
        {
            "s" => value, "ms" => value / 1e3, "us" => value / 1e6, "ns" => value / 1e9,
            _ => throw new FormatException($"'{text}' has an unknown time unit '{unit}': use s, ms, us or ns."),
        };
    }

    /// <summary>Parses a comma-separated list with <paramref name="parse"/>.</summary>
    public static IReadOnlyList<T> ParseList<T>(string text, Func<string, T> parse) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse).ToList();

    /// <summary>A size for people: 1 MiB, 256 MiB.</summary>
    public static string FormatBytes(double bytes) => bytes switch
    {
        >= 1 << 30 => $"{bytes / (1 << 30):G3} GiB",
        >= 1 << 20 => $"{bytes / (1 << 20):G3} MiB",
        >= 1 << 10 => $"{bytes / (1 << 10):G3} KiB",
        _ => $"{bytes:G3} B",
    };

    private static (double Value, string Unit) Split(string text, string expected)
    {
        var match = Quantity().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture,
            out var value) || value < 0)
            throw new FormatException($"'{text}' is not {expected}.");
        return (value, match.Groups[2].Value.ToLowerInvariant());
    }

    [GeneratedRegex(@"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)$")]
    private static partial Regex Quantity();

    /// <summary>Parses an option's text with <paramref name="parse"/>; a malformed value becomes an
    /// <see cref="ArgumentOutOfRangeException"/> naming the option's property.</summary>
    public static T Option<T>(string property, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (FormatException e)
        {
            throw new ArgumentOutOfRangeException(property, text, e.Message);
        }
    }
}
