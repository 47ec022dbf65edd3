"""The paper's network: encoders, correspondence, generator, discriminator, and inference."""
