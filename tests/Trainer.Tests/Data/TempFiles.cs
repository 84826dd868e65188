namespace LongSeqService.Trainer.Tests.Data;

/// <summary>Writes test dataset files into a private temp folder, deleted on dispose.</summary>
internal sealed class TempFiles : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "longseq-data-test-" + Guid.NewGuid().ToString("N"));

    public TempFiles() => Directory.CreateDirectory(_dir);

    public string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    public string Dir => _dir;

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
