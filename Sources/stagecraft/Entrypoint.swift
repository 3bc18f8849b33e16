import StagecraftCommands

@main
struct Entrypoint {
    static func main() async {
        await Stagecraft.start()
    }
}
