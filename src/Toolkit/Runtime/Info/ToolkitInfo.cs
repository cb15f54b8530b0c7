using System.Reflection;
using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>What the toolkit sees on this machine: versions, device, MPI, cores. <c>toolkit info</c> and <c>#!toolkit
/// info</c> show it.</summary>
/// <param name="ToolkitVersion">This library's version.</param>
/// <param name="DotNetVersion">The .NET runtime.</param>
/// <param name="OperatingSystem">OS description.</param>
/// <param name="Cores">Logical processors.</param>
/// <param name="Torch">How TorchSharp was loaded.</param>
/// <param name="Device">The device <c>--device</c> resolved to, and why.</param>
/// <param name="MpiLibrary">The MPICH-ABI library found, or null.</param>
/// <param name="MpiStatus">A sentence on MPI availability and what to install if missing.</param>
/// <param name="MpiLauncher">Path of <c>mpiexec</c> (MPICH hydra), or null.</param>
public sealed record ToolkitInfo(
    string ToolkitVersion, string DotNetVersion, string OperatingSystem, int Cores,
    TorchRuntimeInfo Torch, string Device, string? MpiLibrary, string MpiStatus, string? MpiLauncher)
{
    /// <summary>Collects the information (initialises TorchSharp if needed).</summary>
    /// <param name="device">A device spec (<see cref="Devices.Grammar"/>).</param>
    public static ToolkitInfo Collect(string device = "auto")
    {
        var torch = TorchRuntime.EnsureInitialized();
        var choice = Devices.Resolve(device);
        var mpi = Runtime.MpiLibrary.Probe();
        return new ToolkitInfo(
            ToolkitVersion: typeof(ToolkitInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>(
                )?.InformationalVersion.Split('+')[0] ?? "unknown",
            DotNetVersion: RuntimeInformation.FrameworkDescription,
            OperatingSystem: RuntimeInformation.OSDescription,
            Cores: Environment.ProcessorCount,
            Torch: torch,
            Device: $"{choice.Name} ({choice.Reason})",
            MpiLibrary: mpi,
            MpiStatus: mpi is null ? Runtime.MpiLibrary.MissingMessage() : $"MPI available through {mpi}",
            MpiLauncher: Runtime.MpiLauncher.Find());
    }

    /// <summary>Name/value rows for tables.</summary>
    public IReadOnlyList<(string Name, string Value)> Rows() =>
    [
        ("toolkit", ToolkitVersion),
        (".NET", DotNetVersion),
        ("OS", OperatingSystem),
        ("cores", Cores.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("TorchSharp", Torch.TorchSharpVersion),
        ("libtorch", Torch.LibTorchVersion),
        ("native runtime", Torch.Patched ? $"patched copy in {Torch.CacheDirectory}" : "as shipped"),
        ("native detail", Torch.Detail),
        ("finaliser guard", Torch.FinalizerGuard),
        ("device", Device),
        ("MPI library", MpiLibrary ?? "not found"),
        ("MPI", MpiStatus),
        ("mpiexec", MpiLauncher ?? "not found"),
    ];
}

/// <summary>Options of <c>toolkit info</c>.</summary>
public sealed record ToolkitInfoOptions
{
    /// <summary>Device to resolve. Default auto.</summary>
    [Options.Option(
        "Device to resolve: auto, cpu, cuda or cuda:i (auto picks CUDA when TorchSharp's CUDA natives and a GPU are " +
            "present, and says why not otherwise).")]
    public string Device { get; init; } = "auto";
}
