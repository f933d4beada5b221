from chat_agents_dagster.sandbox.cli import main

if __name__ == "__main__":
    main()
