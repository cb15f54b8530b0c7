using System.Runtime.Loader;

namespace Toolkit.Interactive;

/// <summary>
/// Binds requests for FSharp.Core 10.1 (Plotly.NET 6) to the FSharp.Core 10.0 the kernel tool (dotnet-interactive
/// 1.0.712001) already loaded. Without it the first chart fails with "Could not load file or assembly 'FSharp.Core,
/// Version=10.1.0.0'". Must run before any method that touches a Plotly type is compiled.
/// </summary>
internal static class FSharpCoreRedirect
{
    private static int _installed;

    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        AssemblyLoadContext.Default.Resolving += (_, name) =>
            name.Name == "FSharp.Core"
                ? AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == "FSharp.Core")
                : null;
    }
}
