using System.Buffers.Binary;
using System.Text;

namespace Toolkit.Runtime;

/// <summary>
/// Writes a tiny ELF shared object that defines the given functions as immediate returns.
/// </summary>
/// <remarks>
/// Why generate it instead of compiling it: users of the toolkit (notebooks, CI images) often have
/// no C compiler, and committing a binary is worse. The object has two loadable segments (code and
/// read-only tables; the dynamic section in a writable page because older glibc versions relocate
/// it in place), a SysV hash table with one bucket, no relocations and no section headers, which is
/// all the dynamic loader needs. Symbols carry no version, so the loader accepts them for any
/// versioned reference (glibc <c>check_match</c>: an object without a version table matches).
/// </remarks>
internal static class ElfShimWriter
{
    private const int PageSize = 0x1000;
    private const ushort MachineX86_64 = 62;
    private const ushort MachineAArch64 = 183;

    /// <summary>Builds the shared object bytes.</summary>
    /// <param name="machine">ELF machine of the library that will use the shim.</param>
    /// <param name="soname">DT_SONAME of the shim.</param>
    /// <param name="functions">Mangled names of the no-op functions to define.</param>
    public static byte[] Build(ushort machine, string soname, IReadOnlyList<string> functions)
    {
        var ret = machine switch
        {
            MachineX86_64 => new byte[] { 0xC3 },
            MachineAArch64 => new byte[] { 0xC0, 0x03, 0x5F, 0xD6 },
            _ => throw new PlatformNotSupportedException($"No shim code for ELF machine {machine}."),
        };

        // .dynstr: "\0" soname "\0" names...
        var strtab = new MemoryStream();
        strtab.WriteByte(0);
        var sonameOffset = AppendString(strtab, soname);
        var nameOffsets = functions.Select(f => AppendString(strtab, f)).ToArray();

        const int headerSize = 64, phdrSize = 56, phdrCount = 4;
        var symCount = functions.Count + 1;
        var symtabAt = headerSize + phdrSize * phdrCount;
        var strtabAt = symtabAt + 24 * symCount;
        var hashAt = Align(strtabAt + (int)strtab.Length, 8);
        var hashSize = 4 * (2 + 1 + symCount);
        var textAt = Align(hashAt + hashSize, 16);
        var textEnd = textAt + ret.Length;
        var dynamicAt = Align(textEnd, PageSize);
        const int dynamicEntries = 7;
        var fileSize = dynamicAt + 16 * dynamicEntries;

        var image = new byte[fileSize];
        var span = image.AsSpan();
        WriteHeader(span, machine, phdrCount);

        // Program headers: text+tables (R+X), dynamic page (RW), PT_DYNAMIC, PT_GNU_STACK (non-executable stack).
        WritePhdr(span[(headerSize + 0 * phdrSize)..], type: 1, flags: 5, offset: 0, size: textEnd, align: PageSize);
        WritePhdr(span[(headerSize + 1 * phdrSize)..], type: 1, flags: 6, offset: dynamicAt, size: 16 * dynamicEntries, align: PageSize);
        WritePhdr(span[(headerSize + 2 * phdrSize)..], type: 2, flags: 6, offset: dynamicAt, size: 16 * dynamicEntries, align: 8);
        WritePhdr(span[(headerSize + 3 * phdrSize)..], type: 0x6474e551, flags: 6, offset: 0, size: 0, align: 16);

        // Symbols: index 0 is the null symbol; every function points at the same `ret`.
        for (var i = 0; i < functions.Count; i++)
        {
            var sym = span[(symtabAt + 24 * (i + 1))..];
            BinaryPrimitives.WriteUInt32LittleEndian(sym, (uint)nameOffsets[i]);
            sym[4] = 0x12;                                   // STB_GLOBAL << 4 | STT_FUNC
            sym[5] = 0;                                      // STV_DEFAULT
            BinaryPrimitives.WriteUInt16LittleEndian(sym[6..], 1);  // any defined section index
            BinaryPrimitives.WriteUInt64LittleEndian(sym[8..], (ulong)textAt);
            BinaryPrimitives.WriteUInt64LittleEndian(sym[16..], (ulong)ret.Length);
        }
        strtab.ToArray().CopyTo(span[strtabAt..]);

        // SysV hash with a single bucket chaining every symbol: bucket -> n-1 -> n-2 -> ... -> 1 -> 0.
        var hash = span[hashAt..];
        BinaryPrimitives.WriteUInt32LittleEndian(hash, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(hash[4..], (uint)symCount);
        BinaryPrimitives.WriteUInt32LittleEndian(hash[8..], (uint)(symCount - 1));
        for (var i = 1; i < symCount; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(hash[(12 + 4 * i)..], (uint)(i - 1));

        ret.CopyTo(span[textAt..]);

        var dyn = span[dynamicAt..];
        WriteDyn(dyn, 0, tag: 4, value: hashAt);                 // DT_HASH
        WriteDyn(dyn, 1, tag: 5, value: strtabAt);               // DT_STRTAB
        WriteDyn(dyn, 2, tag: 6, value: symtabAt);               // DT_SYMTAB
        WriteDyn(dyn, 3, tag: 10, value: (int)strtab.Length);    // DT_STRSZ
        WriteDyn(dyn, 4, tag: 11, value: 24);                    // DT_SYMENT
        WriteDyn(dyn, 5, tag: 14, value: sonameOffset);          // DT_SONAME
        WriteDyn(dyn, 6, tag: 0, value: 0);                      // DT_NULL
        return image;
    }

    private static void WriteHeader(Span<byte> span, ushort machine, int phdrCount)
    {
        span[0] = 0x7f; span[1] = (byte)'E'; span[2] = (byte)'L'; span[3] = (byte)'F';
        span[4] = 2;    // ELFCLASS64
        span[5] = 1;    // little endian
        span[6] = 1;    // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(span[16..], 3);         // ET_DYN
        BinaryPrimitives.WriteUInt16LittleEndian(span[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 1);         // EV_CURRENT
        BinaryPrimitives.WriteUInt64LittleEndian(span[32..], 64);        // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(span[52..], 64);        // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(span[54..], 56);        // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(span[56..], (ushort)phdrCount);
        BinaryPrimitives.WriteUInt16LittleEndian(span[58..], 64);        // e_shentsize
    }

    private static void WritePhdr(Span<byte> p, uint type, uint flags, int offset, int size, int align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], (ulong)offset);   // p_offset
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], (ulong)offset);  // p_vaddr (identity layout)
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], (ulong)offset);  // p_paddr
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], (ulong)size);    // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], (ulong)size);    // p_memsz
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], (ulong)align);
    }

    private static void WriteDyn(Span<byte> dyn, int index, long tag, int value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(dyn[(16 * index)..], tag);
        BinaryPrimitives.WriteInt64LittleEndian(dyn[(16 * index + 8)..], value);
    }

    private static int AppendString(MemoryStream table, string value)
    {
        var offset = (int)table.Length;
        table.Write(Encoding.ASCII.GetBytes(value));
        table.WriteByte(0);
        return offset;
    }

    private static int Align(int value, int alignment) => (value + alignment - 1) / alignment * alignment;
}
