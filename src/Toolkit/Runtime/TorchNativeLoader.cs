using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace Toolkit.Runtime;

/// <summary>
/// Makes TorchSharp's native library load on Linux systems whose C++ runtime is older than the one it was built
/// against.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> asks libstdc++ for version <c>GLIBCXX_3.4.32</c> (GCC 13) for exactly
/// one symbol, <c>std::ios_base_library_init()</c>, which GCC 13 emits into every object that includes &lt;iostream&gt;
/// and which only initialises the standard streams that older runtimes initialise on their own. Debian 12 and Ubuntu
/// 22.04 ship GCC 12's libstdc++ (up to 3.4.30), so the dynamic loader rejects the library.
/// <para>
/// The fix, applied only when the running process's libstdc++ lacks a required version: (1) copy the library into a
/// per-user cache keyed by its content hash and mark the missing version need weak (<c>VER_FLG_WEAK</c>), so the loader
/// no longer refuses it; (2) write a tiny shim object (<see cref="ElfShimWriter"/>) that defines the missing functions
/// as no-ops, and open it in the global scope; (3) open libtorch from its own folder, then the patched copy. TorchSharp
/// later asks for <c>libLibTorchSharp.so</c> by name and the loader hands back the already-loaded copy, because a bare
/// name matches a loaded object's DT_SONAME. Any other missing symbol is not shimmed: we stop with an error that names
/// it and the remedy.
/// </para>
/// <para>
/// Wherever the loader loads the library itself (always when it patches; otherwise when libtorch sits next to it or in
/// a folder the host named, so that the right libtorch is unambiguous) it then installs
/// <see cref="FinalizerGuard"/>, which routes TorchSharp's P/Invokes through a generated forwarder so that
/// Scalars and tensors freed by the GC's finaliser are freed later, not while libtorch reads them.
/// </para>
/// </remarks>
internal static class TorchNativeLoader
{
    private const string LibraryFile = "libLibTorchSharp.so";
    private const string ShimFile = "libtoolkit_cxxabi_shim.so";
    private const string ForwarderFile = "libtoolkit_scalar_guard.so";

    /// <summary>Functions that are safe to replace with a no-op, by mangled name.</summary>
    private static readonly HashSet<string> ShimmableFunctions = ["_ZSt21ios_base_library_initv"];

    /// <summary>Prepares and loads the native library if this system needs it; returns what was done.</summary>
    public static NativePreparation Prepare()
    {
        if (!OperatingSystem.IsLinux())
            return new NativePreparation(null, false, "not Linux: TorchSharp's own loader is used", null,
                "not installed: the forwarder is an ELF object");

        var original = FindOriginal()
            ?? throw TorchRuntimeException.NotFound(LibraryFile,
                CandidateDirectories(AppContext.BaseDirectory).ToList());
        var libstdcxx = FindLoadedLibStdCxx();
        var image = ElfImage.Read(original);
        var defined = ElfImage.Read(libstdcxx).ReadVersionDefinitions();
        var missing = image.ReadVersionNeeds()
            .Where(n => n.File.StartsWith("libstdc++",
                StringComparison.Ordinal) && !n.IsWeak && !defined.Contains(n.Version))
            .ToList();
        if (missing.Count == 0)
        {
            var provided = $"{Path.GetFileName(libstdcxx)} provides every version {LibraryFile} needs";
            // Load it here only where its libtorch is unambiguous (next to it, or in a folder the host named); in a
            // NuGet-cache layout TorchSharp's own loader knows which libtorch package it needs, and nothing is loaded.
            var libtorch = FindLibTorchDirectory(original, scanPackages: false);
            string guard;
            if (libtorch is null)
                guard = $"not installed: libtorch.so is not next to {LibraryFile}; TorchSharp's own loader is used";
            else
            {
                try
                {
                    Dl.OpenGlobal(Path.Combine(libtorch, "libtorch.so"));
                    guard = InstallGuard(Dl.OpenGlobal(original), image.Machine);
                }
                catch (DllNotFoundException e)
                {
                    guard = $"not installed: {e.Message}";
                }
            }
            return new NativePreparation(original, false, provided, null, guard);
        }

        var functions = missing.SelectMany(n => image.ReadUndefinedSymbols(n.Index)).Distinct().ToList();
        var unknown = functions.Where(f => !ShimmableFunctions.Contains(f)).ToList();
        if (unknown.Count > 0)
            throw TorchRuntimeException.UnshimmableSymbols(original, libstdcxx, missing.Select(m => m.Version),
                unknown);

        var cacheDir = PrepareCache(image, missing, functions);
        LoadLibTorch(original);
        Dl.OpenGlobal(Path.Combine(cacheDir, ShimFile));
        var library = Dl.OpenGlobal(Path.Combine(cacheDir, LibraryFile));
        var reason
            = $"{libstdcxx} lacks {string.Join(", ", missing.Select(m => m.Version))}; loaded a patched copy with a " +
                $"no-op shim for {string.Join(", ", functions)}";
        return new NativePreparation(original, true, reason, cacheDir, InstallGuard(library, image.Machine));
    }

    /// <summary>Writes (once per machine type) the forwarder <see cref="FinalizerGuard"/> needs and installs the
    /// guard; on failure says why instead of throwing.</summary>
    private static string InstallGuard(IntPtr library, ushort machine)
    {
        try
        {
            var bytes = ElfShimWriter.BuildForwarder(machine, ForwarderFile, [LibraryFile],
                FinalizerGuard.Functions);
            var path = Path.Combine(ToolkitPaths.CacheDirectory("native-shims"),
                $"{machine}-{Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant()}", ForwarderFile);
            if (!File.Exists(path))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                // ranks starting together each write their own, then rename
                var staging = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}";
                File.WriteAllBytes(staging, bytes);
                File.Move(staging, path, overwrite: true);
            }
            return FinalizerGuard.Install(library, path);
        }
        // a best effort: TorchSharp works without it, as before
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"not installed: {e.Message}";
        }
    }

    /// <summary>The folders that may hold TorchSharp's native library, most specific first.</summary>
    internal static IEnumerable<string> CandidateDirectories(string appBase)
    {
        var rid = RuntimeRid;
        var assemblyDir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? appBase;
        yield return assemblyDir;
        yield return Path.Combine(assemblyDir, "runtimes", rid, "native");
        // NuGet cache layout (notebooks): torchsharp/<v>/lib/net8.0/TorchSharp.dll ->
        // torchsharp/<v>/runtimes/<rid>/native
        yield return Path.GetFullPath(Path.Combine(assemblyDir, "..", "..", "runtimes", rid, "native"));
        yield return appBase;
        yield return Path.Combine(appBase, "runtimes", rid, "native");
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string dirs)
            foreach (var dir in dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                yield return dir;
    }

    internal static string RuntimeRid => RuntimeInformation.OSArchitecture switch
    {
        Architecture.Arm64 => "linux-arm64",
        _ => "linux-x64",
    };

    private static string? FindOriginal() =>
        CandidateDirectories(AppContext.BaseDirectory).Select(d => Path.Combine(d,
            LibraryFile)).FirstOrDefault(File.Exists);

    /// <summary>
    /// The libtorch folder: next to LibTorchSharp in an application, a separate package in the NuGet cache (the newest
    /// version, CUDA first; only when <paramref name="scanPackages"/>).
    /// </summary>
    internal static string? FindLibTorchDirectory(string? torchSharpNative, bool scanPackages = true)
    {
        var local = torchSharpNative is null ? null : Path.GetDirectoryName(torchSharpNative);
        if (local is not null && File.Exists(Path.Combine(local, "libtorch.so"))) return local;
        foreach (var dir in CandidateDirectories(AppContext.BaseDirectory))
            if (File.Exists(Path.Combine(dir, "libtorch.so"))) return dir;
        if (!scanPackages) return null;
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (!Directory.Exists(packages)) return null;
        return Directory.EnumerateDirectories(packages, $"libtorch-*-{RuntimeRid}*")
            .SelectMany(Directory.EnumerateDirectories)
            .Select(v => Path.Combine(v, "runtimes", RuntimeRid, "native"))
            .Where(d => File.Exists(Path.Combine(d, "libtorch.so")))
            .OrderByDescending(d => d.Contains("cuda", StringComparison.OrdinalIgnoreCase))
            .ThenByDescending(d => Version.TryParse(Path.GetFileName(Path.GetFullPath(Path.Combine(d, "..", "..",
                ".."))), out var v) ? v : new Version())
            .FirstOrDefault();
    }

    private static void LoadLibTorch(string original)
    {
        var dir = FindLibTorchDirectory(original)
            ?? throw TorchRuntimeException.NotFound("libtorch.so",
                CandidateDirectories(AppContext.BaseDirectory).ToList());
        // Its own RUNPATH ($ORIGIN) brings libtorch_cpu, libc10 and libgomp from the same folder; the patched
        // copy's DT_NEEDED entries then match these loaded objects by soname.
        Dl.OpenGlobal(Path.Combine(dir, "libtorch.so"));
    }

    private static string FindLoadedLibStdCxx()
    {
        string? Scan() => File.ReadLines("/proc/self/maps")
            .Select(l => l.IndexOf('/') is var i and >= 0 ? l[i..] : null)
            .FirstOrDefault(p => p is not null && Path.GetFileName(p).StartsWith("libstdc++.so",
                StringComparison.Ordinal));
        var path = Scan();
        if (path is null)
        {
            NativeLibrary.Load("libstdc++.so.6");
            path = Scan();
        }
        return path
            ?? throw new DllNotFoundException(
                "The C++ runtime libstdc++.so.6 could not be found. Install it (Debian/Ubuntu: apt-get install " +
                    "libstdc++6).");
    }

    private static string PrepareCache(ElfImage image, IReadOnlyList<VersionNeed> missing,
        IReadOnlyList<string> functions)
    {
        var key = Convert.ToHexString(SHA256.HashData(image.Bytes))[..16].ToLowerInvariant();
        var version = typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown";
        var root = ToolkitPaths.CacheDirectory("torchsharp-native");
        var final = Path.Combine(root, $"{version}-{key}");
        if (File.Exists(Path.Combine(final, LibraryFile)) && File.Exists(Path.Combine(final, ShimFile)))
            return final;

        // Several MPI ranks may start at once: build in a private folder, then rename it into place.
        var staging = Path.Combine(root, $".staging-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var need in missing) image.MakeWeak(need);
            File.WriteAllBytes(Path.Combine(staging, LibraryFile), image.Bytes);
            File.WriteAllBytes(Path.Combine(staging, ShimFile), ElfShimWriter.Build(image.Machine, ShimFile,
                functions));
            try
            {
                Directory.Move(staging, final);
            }
            catch (IOException) when (Directory.Exists(final))
            {
                // Another process won the race; its copy is identical.
            }
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
        return final;
    }
}

/// <summary>What <see cref="TorchNativeLoader.Prepare"/> found and did.</summary>
/// <param name="NativeLibrary">The original TorchSharp native library, if found.</param>
/// <param name="Patched">True when a patched copy was loaded.</param>
/// <param name="Reason">Why it was (or was not) patched.</param>
/// <param name="CacheDirectory">Where the patched copy lives.</param>
/// <param name="FinalizerGuard">Whether <see cref="FinalizerGuard"/> was installed, or why not.</param>
internal sealed record NativePreparation(string? NativeLibrary, bool Patched, string Reason, string? CacheDirectory,
    string FinalizerGuard);
