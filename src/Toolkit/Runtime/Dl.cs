using System.Runtime.InteropServices;

namespace Toolkit.Runtime;

/// <summary>
/// <c>dlopen</c> with explicit flags. .NET's <see cref="NativeLibrary"/> opens libraries with <c>RTLD_LAZY</c> only
/// (local scope); the C++ runtime shim must be in the global scope so that TorchSharp's native library can bind to it.
/// </summary>
internal static partial class Dl
{
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;

    /// <summary>Opens a library with <c>RTLD_NOW | RTLD_GLOBAL</c>.</summary>
    /// <exception cref="DllNotFoundException">The loader refused it; the message carries <c>dlerror()</c>.</exception>
    public static IntPtr OpenGlobal(string path)
    {
        IntPtr handle;
        string? error;
        try
        {
            handle = Libc.dlopen(path, RtldNow | RtldGlobal);
            error = handle == IntPtr.Zero ? Marshal.PtrToStringUTF8(Libc.dlerror()) : null;
        }
        catch (EntryPointNotFoundException)
        {
            // glibc before 2.34 keeps dlopen in libdl.
            handle = LibDl.dlopen(path, RtldNow | RtldGlobal);
            error = handle == IntPtr.Zero ? Marshal.PtrToStringUTF8(LibDl.dlerror()) : null;
        }
        return handle != IntPtr.Zero ? handle : throw new DllNotFoundException($"dlopen({path}) failed: {error}");
    }

    private static partial class Libc
    {
        [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial IntPtr dlopen(string path, int flags);

        [LibraryImport("libc.so.6")]
        internal static partial IntPtr dlerror();
    }

    private static partial class LibDl
    {
        [LibraryImport("libdl.so.2", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial IntPtr dlopen(string path, int flags);

        [LibraryImport("libdl.so.2")]
        internal static partial IntPtr dlerror();
    }
}
