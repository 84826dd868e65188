using TorchSharp;

Console.WriteLine($"torch {torch.__version__}: {torch.ones(2, 2).sum().item<float>()}");
