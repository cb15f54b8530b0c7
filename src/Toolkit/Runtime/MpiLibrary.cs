using System.Reflection;
using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>
/// Maps MPI.NET's imports (<c>msmpi.dll</c>, MS-MPI) to an MPI library with the same ABI on Linux.
/// </summary>
/// <remarks>
/// MS-MPI is derived from MPICH and uses MPICH's handle values and status layout, which MPI.NET's constants encode.
/// MPICH (<c>libmpich.so.12</c>), Intel MPI, MVAPICH and Cray MPICH share that ABI ("MPICH ABI compatibility
/// initiative"); Open MPI does not (its handles are pointers) and would crash, so it is refused with an explanation.
/// <c>TOOLKIT_MPI_LIBRARY</c> names another library.
/// </remarks>
internal static class MpiLibrary
{
    /// <summary>Environment variable that overrides the MPI library path or name.</summary>
    public const string OverrideVariable = "TOOLKIT_MPI_LIBRARY";

    private static readonly string[] MpichAbiNames = ["libmpich.so.12", "libmpi.so.12", "libmpich.so"];
    private static readonly Lock Gate = new();
    private static IntPtr _handle;
    private static string? _path;

    /// <summary>Finds an MPICH-ABI library without loading MPI. Returns its name or path, or null.</summary>
    public static string? Probe()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } custom) return custom;
        foreach (var name in MpichAbiNames)
        {
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            NativeLibrary.Free(handle);
            return name;
        }
        return null;
    }

    /// <summary>True when only Open MPI (different ABI) is installed.</summary>
    public static bool OpenMpiOnly() => Probe() is null && NativeLibrary.TryLoad("libmpi.so.40", out _);

    /// <summary>Installs the import resolver for MPI.NET and loads the library. Idempotent.</summary>
    /// <exception cref="DllNotFoundException">No MPICH-ABI library; the message says what to install.</exception>
    public static string EnsureLoaded()
    {
        lock (Gate)
        {
            if (_path is not null) return _path;
            var name = Probe() ?? throw new DllNotFoundException(MissingMessage());
            if (!NativeLibrary.TryLoad(name, out _handle))
                throw new DllNotFoundException(
                    $"{OverrideVariable}={name} could not be loaded. Point it at an MPICH-ABI library " +
                        $"(libmpich.so.12, Intel MPI's libmpi.so.12, MVAPICH, Cray MPICH).");
            NativeLibrary.SetDllImportResolver(typeof(MPI.Unsafe).Assembly, Resolve);
            _path = name;
            return name;
        }
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName.StartsWith("msmpi", StringComparison.OrdinalIgnoreCase) ? _handle : IntPtr.Zero;

    internal static string MissingMessage() => OpenMpiOnly()
        ? "Only Open MPI was found. The toolkit's MPI backend needs an MPICH-ABI library (MPICH, Intel MPI, MVAPICH, " +
            "Cray MPICH): " +
          "install MPICH (Debian/Ubuntu: apt-get install mpich) and launch with mpiexec.mpich, or set "
              + OverrideVariable + " to an MPICH-ABI libmpi."
        : "No MPI library was found. Install MPICH (Debian/Ubuntu: apt-get install mpich; Fedora: dnf install mpich) " +
            "or set " +
          OverrideVariable + " to an MPICH-ABI library. In-process ranks (--launcher inproc) need no MPI.";
}
