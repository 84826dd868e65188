using System.Runtime.InteropServices;

namespace LongSeqService.Trainer.Cli;

/// <summary>
/// libtorch's OpenMP threads spin while they wait for work. When the cores are shared — several ranks
/// or jobs on one host, or anything else running — spinning threads steal the time the working ones
/// need: measured here under load, SFT at SP=1 ran 503 tok/s spinning and 2,945 tok/s with passive
/// waiting. So the trainer asks for passive waiting unless the user set OMP_WAIT_POLICY themselves.
/// This must happen before libtorch (and its libgomp) loads, and through libc's setenv: .NET's
/// Environment.SetEnvironmentVariable does not change the native environment that libgomp reads.
/// </summary>
public static partial class OpenMpSettings
{
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    public static void PreferPassiveWaiting()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null) return;
        SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
    }
}
