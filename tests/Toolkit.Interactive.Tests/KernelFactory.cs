using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.CSharp;

namespace Toolkit.Interactive.Tests;

/// <summary>A kernel like the tool's (C# with kernel helpers) with our extension (and its chart formatter)
/// loaded.</summary>
internal static class KernelFactory
{
    /// <summary>
    /// A kernel like a notebook's, in the test process. Jobs it starts in other processes (MPI ranks, workers) run
    /// this checkout's build of the toolkit command, named by the one setting for it (TOOLKIT_CLI).
    /// </summary>
    public static CompositeKernel Create()
    {
        if (Environment.GetEnvironmentVariable("TOOLKIT_CLI") is not { Length: > 0 } && File.Exists(CheckoutCli))
            Environment.SetEnvironmentVariable("TOOLKIT_CLI", CheckoutCli);
        var csharp = new CSharpKernel().UseKernelHelpers().UseValueSharing();
        var kernel = new CompositeKernel { csharp };
        kernel.DefaultKernelName = csharp.Name;
        ToolkitKernelExtension.Load(kernel);
        return kernel;
    }

    /// <summary>This checkout's build of the toolkit command (<c>./build.sh pack</c> builds it).</summary>
    public static string CheckoutCli
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Toolkit.sln"))) dir = dir.Parent;
            return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("Toolkit.sln not found"),
                "src", "Cli", "bin", "Release", "net10.0", "Toolkit.Cli.dll");
        }
    }
}
