package dev.strom.jvm;
final class Placeholder {}
