// Marks the GLIBCXX_3.4.32 version requirement of libLibTorchSharp.so as weak (VER_FLG_WEAK).
// TorchSharp-cpu 0.107.0 ships a native library that asks for GLIBCXX_3.4.32 (GCC 13) for one
// symbol it never calls; Debian 12's libstdc++ stops at 3.4.30, so the loader refuses it.
// A weak requirement makes the loader warn instead. See docs/platform.md.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        foreach (var f in Files)
        {
            bool changed = ElfVersionPatcher.Weaken(f.ItemSpec, "GLIBCXX_3.4.32");
            Log.LogMessage(MessageImportance.Normal, (changed ? "Weakened" : "Already weak") + " GLIBCXX_3.4.32 in " + f.ItemSpec);
        }
        return !Log.HasLoggedErrors;
    }
}

public static class ElfVersionPatcher
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    /// <summary>Returns true when the file was changed, false when nothing needed changing.</summary>
    public static bool Weaken(string path, string version)
    {
        byte[] b = File.ReadAllBytes(path);
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[4] != 2 /* ELFCLASS64 */)
            throw new InvalidDataException(path + " is not a 64-bit ELF file");
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        ushort shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
        bool changed = false;
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != ShtGnuVerneed) continue;
            int off = checked((int)BitConverter.ToUInt64(b, sh + 0x18));
            uint link = BitConverter.ToUInt32(b, sh + 0x28), count = BitConverter.ToUInt32(b, sh + 0x2C);
            int strtab = checked((int)BitConverter.ToUInt64(b, checked((int)shoff + (int)link * shentsize) + 0x18));
            int vn = off;
            for (uint n = 0; n < count; n++)
            {
                ushort cnt = BitConverter.ToUInt16(b, vn + 2);
                int aux = vn + (int)BitConverter.ToUInt32(b, vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    int name = strtab + (int)BitConverter.ToUInt32(b, aux + 8);
                    int end = Array.IndexOf(b, (byte)0, name);
                    if (Encoding.ASCII.GetString(b, name, end - name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(b, aux + 4);
                        if ((flags & VerFlgWeak) == 0)
                        {
                            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(b, aux + 4);
                            changed = true;
                        }
                    }
                    aux += (int)BitConverter.ToUInt32(b, aux + 12);
                }
                vn += (int)BitConverter.ToUInt32(b, vn + 12);
            }
        }
        if (changed)
        {
            string tmp = path + ".patching";
            File.WriteAllBytes(tmp, b);
            File.Copy(tmp, path, true); File.Delete(tmp);
        }
        return changed;
    }
}
