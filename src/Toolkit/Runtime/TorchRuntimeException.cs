namespace Toolkit.Runtime;

/// <summary>TorchSharp's native runtime could not be loaded; the message names the cause and the remedy.</summary>
public sealed class TorchRuntimeException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public TorchRuntimeException(string message, Exception? inner = null) : base(message, inner) { }

    internal static TorchRuntimeException NotFound(string file, IReadOnlyList<string> searched) => new(
        $"TorchSharp's native library {file} was not found. Searched: {string.Join(", ", searched.Distinct())}. " +
        "Reference the TorchSharp-cpu package (or TorchSharp-cuda-linux for GPUs) from the project or notebook, and " +
            "run `dotnet restore`.");

    internal static TorchRuntimeException UnshimmableSymbols(string library, string libstdcxx,
        IEnumerable<string> versions, IEnumerable<string> symbols) => new(
        $"{library} needs {string.Join(", ", versions)} from the C++ runtime, but {libstdcxx} does not provide it, " +
        $"and the symbols bound to it ({string.Join(", ", symbols)}) cannot be replaced safely. " +
        "Install a newer libstdc++ (GCC 13 or later, e.g. Ubuntu 24.04 / Debian 13 packages) or put one on " +
            "LD_LIBRARY_PATH before starting the process.");

    internal static TorchRuntimeException LoadFailed(NativePreparation preparation, Exception inner) => new(
        $"TorchSharp failed to initialise its native backend ({inner.GetType().Name}: {FirstLine(inner.Message)}). " +
        $"Native library: {preparation.NativeLibrary ?? "not found"}; {preparation.Reason}. " +
        "If TorchSharp was already used in this process before the toolkit prepared it (for example in an earlier " +
            "notebook cell), restart the process or kernel and load the toolkit first.",
        inner);

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
