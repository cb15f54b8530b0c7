using System.Buffers.Binary;
using System.Text;

namespace Toolkit.Runtime;

/// <summary>
/// A minimal reader for 64-bit little-endian ELF shared objects: just enough to list the symbol versions a library
/// needs (<c>.gnu.version_r</c>), the versions a library defines (<c>.gnu.version_d</c>) and which undefined dynamic
/// symbols are bound to each needed version.
/// </summary>
/// <remarks>
/// Used by <see cref="TorchNativeLoader"/> to decide whether TorchSharp's native library can load against the C++
/// runtime of this machine, and to weaken one version need in a private copy. Offsets follow the System V gABI and the
/// LSB "Symbol Versioning" chapter.
/// </remarks>
internal sealed class ElfImage
{
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;

    /// <summary>Set in <c>vna_flags</c> to make a version need weak (a missing version is then not fatal).</summary>
    internal const ushort VerFlagWeak = 0x2;

    private readonly byte[] _bytes;
    private readonly List<Section> _sections = [];

    private ElfImage(string path, byte[] bytes)
    {
        Path = path;
        _bytes = bytes;
        Parse();
    }

    /// <summary>The file this image was read from.</summary>
    public string Path { get; }

    /// <summary>ELF <c>e_machine</c> (62 = x86-64, 183 = AArch64).</summary>
    public ushort Machine { get; private set; }

    /// <summary>The raw bytes; patches are applied to this array.</summary>
    public byte[] Bytes => _bytes;

    /// <summary>Reads and parses an ELF file.</summary>
    /// <exception cref="InvalidDataException">The file is not a 64-bit little-endian ELF object with section
    /// headers.</exception>
    public static ElfImage Read(string path) => new(path, File.ReadAllBytes(path));

    /// <summary>Every version this object needs, with the file that should provide it.</summary>
    public IReadOnlyList<VersionNeed> ReadVersionNeeds()
    {
        var result = new List<VersionNeed>();
        foreach (var section in _sections.Where(s => s.Type == ShtGnuVerneed))
        {
            var strtab = _sections[(int)section.Link];
            long at = section.Offset;
            for (var i = 0; i < section.Info; i++)
            {
                var count = U16(at + 2);
                var file = String(strtab, U32(at + 4));
                long aux = at + U32(at + 8);
                for (var j = 0; j < count; j++)
                {
                    result.Add(new VersionNeed(file, String(strtab, U32(aux + 8)), U16(aux + 4), U16(aux + 6),
                        aux + 4));
                    aux += U32(aux + 12);
                }
                var next = U32(at + 12);
                if (next == 0) break;
                at += next;
            }
        }
        return result;
    }

    /// <summary>Every version name this object defines (for example GLIBCXX_3.4.30 in libstdc++).</summary>
    public IReadOnlySet<string> ReadVersionDefinitions()
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var section in _sections.Where(s => s.Type == ShtGnuVerdef))
        {
            var strtab = _sections[(int)section.Link];
            long at = section.Offset;
            for (var i = 0; i < section.Info; i++)
            {
                result.Add(String(strtab, U32(at + U32(at + 12))));
                var next = U32(at + 16);
                if (next == 0) break;
                at += next;
            }
        }
        return result;
    }

    /// <summary>Names of undefined dynamic symbols whose version index is <paramref name="versionIndex"/>.</summary>
    public IReadOnlyList<string> ReadUndefinedSymbols(ushort versionIndex)
    {
        var dynsym = _sections.Single(s => s.Type == ShtDynsym);
        var versym = _sections.SingleOrDefault(s => s.Type == ShtGnuVersym)
            ?? throw new InvalidDataException($"{Path} has no .gnu.version section.");
        var strtab = _sections[(int)dynsym.Link];
        var result = new List<string>();
        var count = dynsym.Size / 24;
        for (long i = 1; i < count; i++)
        {
            long sym = dynsym.Offset + i * 24;
            var shndx = U16(sym + 6);
            var version = (ushort)(U16(versym.Offset + i * 2) & 0x7fff);
            if (shndx == 0 && version == versionIndex) result.Add(String(strtab, U32(sym)));
        }
        return result;
    }

    /// <summary>Marks one version need weak in <see cref="Bytes"/>.</summary>
    public void MakeWeak(VersionNeed need)
    {
        var flags = (ushort)(U16(need.FlagsOffset) | VerFlagWeak);
        BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan((int)need.FlagsOffset), flags);
    }

    private void Parse()
    {
        if (_bytes.Length < 64 || _bytes[0] != 0x7f || _bytes[1] != (byte)'E' || _bytes[2] != (byte)'L'
            || _bytes[3] != (byte)'F')
            throw new InvalidDataException($"{Path} is not an ELF file.");
        if (_bytes[4] != 2 || _bytes[5] != 1)
            throw new InvalidDataException($"{Path} is not a 64-bit little-endian ELF file.");
        Machine = U16(18);
        var shoff = (long)U64(40);
        var shentsize = U16(58);
        var shnum = U16(60);
        if (shoff == 0 || shnum == 0)
            throw new InvalidDataException($"{Path} has no section headers.");
        for (var i = 0; i < shnum; i++)
        {
            long at = shoff + (long)i * shentsize;
            _sections.Add(new Section(U32(at + 4), (long)U64(at + 24), (long)U64(at + 32), U32(at + 40), U32(at + 44)));
        }
    }

    private ushort U16(long at) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan((int)at));
    private uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan((int)at));
    private ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan((int)at));

    private string String(Section strtab, uint offset)
    {
        var start = (int)(strtab.Offset + offset);
        var end = Array.IndexOf(_bytes, (byte)0, start);
        return Encoding.ASCII.GetString(_bytes, start, end - start);
    }

    private sealed record Section(uint Type, long Offset, long Size, uint Link, uint Info);
}

/// <summary>One entry of an object's version needs: <paramref name="Version"/> required from
/// <paramref name="File"/>.</summary>
/// <param name="File">The needed library (DT_NEEDED name), for example <c>libstdc++.so.6</c>.</param>
/// <param name="Version">The version name, for example <c>GLIBCXX_3.4.32</c>.</param>
/// <param name="Flags">The <c>vna_flags</c> field.</param>
/// <param name="Index">The <c>vna_other</c> field: the version index symbols refer to.</param>
/// <param name="FlagsOffset">File offset of <c>vna_flags</c>.</param>
internal sealed record VersionNeed(string File, string Version, ushort Flags, ushort Index, long FlagsOffset)
{
    /// <summary>True when a missing version is not fatal at load time.</summary>
    public bool IsWeak => (Flags & ElfImage.VerFlagWeak) != 0;
}
