using TorchSharp;

namespace LongSeqService.Trainer.Tests;

public class TorchLoadsTests
{
    [Fact]
    public void NativeLibrary_AfterBuildPatch_Loads()
    {
        using var t = torch.arange(4, dtype: torch.float64);
        Assert.Equal(6.0, t.sum().item<double>());
    }
}
