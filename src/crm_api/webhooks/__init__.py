"""Webhooks: subscriptions, Standard Webhooks signatures, and at-least-once delivery."""
