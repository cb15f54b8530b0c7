using System.Buffers.Binary;
using System.Text;

namespace Toolkit.Runtime;

/// <summary>
/// Writes a tiny ELF shared object that defines functions as immediate returns (<see cref="Build"/>) or as jumps
/// through a pointer the process fills in at run time (<see cref="BuildForwarder"/>).
/// </summary>
/// <remarks>
/// Why generate it instead of compiling it: users of the toolkit (notebooks, CI images) often have no C compiler, and
/// committing a binary is worse. The object has two loadable segments (code and read-only tables; the dynamic section
/// and the jump slots in a writable page because older glibc versions relocate the dynamic section in place), a SysV
/// hash table with one bucket, no relocations and no section headers, which is all the dynamic loader needs. Symbols
/// carry no version, so the loader accepts them for any versioned reference (glibc <c>check_match</c>: an object
/// without a version table matches).
/// </remarks>
internal static class ElfShimWriter
{
    private const int PageSize = 0x1000;
    private const ushort MachineX86_64 = 62;
    private const ushort MachineAArch64 = 183;

    /// <summary>Builds a shared object whose functions return at once.</summary>
    /// <param name="machine">ELF machine of the library that will use the shim.</param>
    /// <param name="soname">DT_SONAME of the shim.</param>
    /// <param name="functions">Mangled names of the no-op functions to define.</param>
    public static byte[] Build(ushort machine, string soname, IReadOnlyList<string> functions) =>
        Write(machine, soname, [], functions, []);

    /// <summary>
    /// Builds a shared object that depends on <paramref name="needed"/> and defines each of
    /// <paramref name="forwarded"/> as an indirect jump through an 8-byte slot, exported as the data symbol
    /// <see cref="SlotSymbol"/>(name). Until the process writes a function's address into its slot, calling the
    /// function jumps to address 0. <c>dlsym</c> on this object's handle finds the forwarded names here and every other
    /// name in <paramref name="needed"/> (its dependencies are part of its lookup scope), which is how one function of
    /// a library can be interposed for a caller that asks the library's handle for its symbols.
    /// </summary>
    public static byte[] BuildForwarder(ushort machine, string soname, IReadOnlyList<string> needed,
        IReadOnlyList<string> forwarded) =>
        Write(machine, soname, needed, [], forwarded);

    /// <summary>The data symbol holding the target of forwarded function <paramref name="function"/>.</summary>
    public static string SlotSymbol(string function) => function + "__toolkit_target";

    private static byte[] Write(ushort machine, string soname, IReadOnlyList<string> needed,
        IReadOnlyList<string> noOps, IReadOnlyList<string> forwarded)
    {
        var ret = machine switch
        {
            MachineX86_64 => new byte[] { 0xC3 },
            MachineAArch64 => new byte[] { 0xC0, 0x03, 0x5F, 0xD6 },
            _ => throw new PlatformNotSupportedException($"No shim code for ELF machine {machine}."),
        };
        const int trampolineSize = 16;

        // .dynstr: "\0" soname "\0" needed... names... slot names...
        var strtab = new MemoryStream();
        strtab.WriteByte(0);
        var sonameOffset = AppendString(strtab, soname);
        var neededOffsets = needed.Select(n => AppendString(strtab, n)).ToArray();
        var names = noOps.Concat(forwarded).Concat(forwarded.Select(SlotSymbol)).ToArray();
        var nameOffsets = names.Select(n => AppendString(strtab, n)).ToArray();

        const int headerSize = 64, phdrSize = 56, phdrCount = 4;
        var symCount = names.Length + 1;
        var symtabAt = headerSize + phdrSize * phdrCount;
        var strtabAt = symtabAt + 24 * symCount;
        var hashAt = Align(strtabAt + (int)strtab.Length, 8);
        var hashSize = 4 * (2 + 1 + symCount);
        var textAt = Align(hashAt + hashSize, 16);
        var trampolinesAt = Align(textAt + ret.Length, 16);
        var textEnd = trampolinesAt + trampolineSize * forwarded.Count;
        var dynamicAt = Align(textEnd, PageSize);
        var dynamicEntries = 7 + needed.Count;
        var slotsAt = dynamicAt + 16 * dynamicEntries;
        var writableSize = slotsAt + 8 * forwarded.Count - dynamicAt;
        var fileSize = dynamicAt + writableSize;

        var image = new byte[fileSize];
        var span = image.AsSpan();
        WriteHeader(span, machine, phdrCount);

        // Program headers: text+tables (R+X), dynamic and slots page (RW), PT_DYNAMIC, PT_GNU_STACK (non-executable
        // stack).
        WritePhdr(span[(headerSize + 0 * phdrSize)..], type: 1, flags: 5, offset: 0, size: textEnd, align: PageSize);
        WritePhdr(span[(headerSize + 1 * phdrSize)..], type: 1, flags: 6, offset: dynamicAt, size: writableSize,
            align: PageSize);
        WritePhdr(span[(headerSize + 2 * phdrSize)..], type: 2, flags: 6, offset: dynamicAt, size: 16 * dynamicEntries,
            align: 8);
        WritePhdr(span[(headerSize + 3 * phdrSize)..], type: 0x6474e551, flags: 6, offset: 0, size: 0, align: 16);

        // Symbols (index 0 is the null symbol): no-ops point at the one `ret`, forwarded functions at their
        // trampolines, slots at their 8 bytes in the writable page.
        for (var i = 0; i < names.Length; i++)
        {
            var (value, size, info) = i < noOps.Count
                // STB_GLOBAL << 4 | STT_FUNC
                ? (textAt, ret.Length, (byte)0x12)
                : i < noOps.Count + forwarded.Count
                    ? (trampolinesAt + trampolineSize * (i - noOps.Count), trampolineSize, (byte)0x12)
                    // STB_GLOBAL << 4 | STT_OBJECT
                    : (slotsAt + 8 * (i - noOps.Count - forwarded.Count), 8, (byte)0x11);
            var sym = span[(symtabAt + 24 * (i + 1))..];
            BinaryPrimitives.WriteUInt32LittleEndian(sym, (uint)nameOffsets[i]);
            sym[4] = info;
            sym[5] = 0;                                      // STV_DEFAULT
            BinaryPrimitives.WriteUInt16LittleEndian(sym[6..], 1);  // any defined section index
            BinaryPrimitives.WriteUInt64LittleEndian(sym[8..], (ulong)value);
            BinaryPrimitives.WriteUInt64LittleEndian(sym[16..], (ulong)size);
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
        for (var i = 0; i < forwarded.Count; i++)
            WriteTrampoline(span[(trampolinesAt + trampolineSize * i)..], machine, trampolinesAt + trampolineSize * i,
                slotsAt + 8 * i);

        var dyn = span[dynamicAt..];
        var entry = 0;
        foreach (var offset in neededOffsets)
            WriteDyn(dyn, entry++, tag: 1, value: offset);       // DT_NEEDED
        WriteDyn(dyn, entry++, tag: 4, value: hashAt);           // DT_HASH
        WriteDyn(dyn, entry++, tag: 5, value: strtabAt);         // DT_STRTAB
        WriteDyn(dyn, entry++, tag: 6, value: symtabAt);         // DT_SYMTAB
        WriteDyn(dyn, entry++, tag: 10, value: (int)strtab.Length);  // DT_STRSZ
        WriteDyn(dyn, entry++, tag: 11, value: 24);              // DT_SYMENT
        WriteDyn(dyn, entry++, tag: 14, value: sonameOffset);    // DT_SONAME
        WriteDyn(dyn, entry, tag: 0, value: 0);                  // DT_NULL
        return image;
    }

    /// <summary>An indirect jump to the address stored at <paramref name="slot"/> (both are addresses relative to the
    /// load base).</summary>
    private static void WriteTrampoline(Span<byte> code, ushort machine, int at, int slot)
    {
        if (machine == MachineX86_64)
        {
            // jmp qword ptr [rip + disp32]; the displacement counts from the end of the 6-byte instruction.
            code[0] = 0xFF;
            code[1] = 0x25;
            BinaryPrimitives.WriteInt32LittleEndian(code[2..], slot - (at + 6));
            code[6..16].Fill(0xCC);                                                     // int3 padding
        }
        else
        {
            // ldr x16, <slot> (PC-relative literal, within +-1 MiB); br x16.
            var words = (slot - at) / 4;
            BinaryPrimitives.WriteUInt32LittleEndian(code, 0x58000000u | ((uint)words & 0x7FFFF) << 5 | 16);
            BinaryPrimitives.WriteUInt32LittleEndian(code[4..], 0xD61F0200u);
            BinaryPrimitives.WriteUInt32LittleEndian(code[8..], 0xD4200000u);          // brk #0 padding
            BinaryPrimitives.WriteUInt32LittleEndian(code[12..], 0xD4200000u);
        }
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
