namespace LongSeqService.Shared.Data;

/// <summary>
/// The small English text the built-in tokenizer's merges are learned from. Written for this project:
/// everyday assistant-style prose, instructions, numbers, code-like and JSON-like fragments, so that common
/// words in the example datasets become single tokens. Changing it changes the built-in vocabulary (and
/// the cache key in <see cref="BuiltinTokenizer"/>).
/// </summary>
internal static class BuiltinCorpus
{
    public const string Text = """
Hello! I am an AI assistant. How can I help you today? I can answer questions, write text, explain ideas,
and help you with the tasks you have in mind. Please tell me what you would like to do, and I will do my best.

The user asked the assistant to describe a process. The assistant answered with a short list of steps.
First, gather the ingredients and the tools that you need. Second, mix the flour, the eggs and the milk in a
large bowl until the batter is smooth. Third, heat a pan over medium heat and pour a small amount of batter
into the pan. Cook each side for about one minute, then serve it warm with fruit, sugar or chocolate.

There are many ways to learn a new language. You can read books, listen to music, watch films, talk with
people who speak it, and practice every day. It is important to be patient, because learning takes time.
Making mistakes is a natural part of the process, and each mistake is a chance to improve.

Write a function that returns the sum of two numbers. In Python, you would write: def add(a, b): return a + b.
In C#, you would write: public static int Add(int a, int b) => a + b; The function takes two arguments and
returns their sum. For example, add(2, 3) returns 5, and add(10, 20) returns 30.

Here is a summary of the article: the study found that students who slept at least eight hours each night
performed better on tests than students who slept less. The researchers suggest that schools should start
later in the morning, so that young people can get the rest they need to learn and grow.

Sure, I can help you with that. Could you please provide more details about what you are looking for?
Thank you for your question. The answer depends on several factors, including the time, the place, and the
people involved. In general, it is a good idea to plan ahead, to ask for advice, and to check your work.

The weather today is sunny with a high of 25 degrees and a low of 15 degrees. Tomorrow it will be cloudy,
and there is a chance of rain in the afternoon. The weekend should be warm and dry, which is good news for
anyone who wants to spend time outside with family and friends.

{"name": "get_weather", "arguments": {"location": "New York", "unit": "celsius"}}
{"name": "search_recipes", "description": "Search for recipes based on ingredients", "parameters":
{"type": "object", "properties": {"ingredients": {"type": "array", "items": {"type": "string"}}},
"required": ["ingredients"]}}
{"name": "calculate_tip", "arguments": {"bill_amount": 50, "tip_percentage": 20}}
{"tip_amount": 10, "total": 60, "status": "success", "message": "The result of the function call."}

A computer program is a list of instructions that a computer can follow. Programs are written in a
programming language, such as Python, Java, C, C#, or JavaScript. A good program is correct, clear and
efficient: it gives the right result, other people can read and change it, and it does not waste memory
or time. Testing a program means running it with different inputs and checking that the outputs are right.

The history of science is full of important discoveries. People have always wanted to understand the world
around them: the stars in the sky, the plants and animals on the earth, the water in the oceans, and the
body and the mind. Over many years, scientists have developed methods to observe, measure, and explain
natural events, and these methods have changed the way we live and work.

Climate change is one of the most important problems of our time. The main cause is the release of gases
such as carbon dioxide into the air, which traps heat and makes the planet warmer. To reduce the impact,
countries can use more energy from the sun and the wind, improve public transport, and protect forests.

Question: What is the capital of France? Answer: The capital of France is Paris.
Question: How many days are there in a week? Answer: There are seven days in a week.
Question: Who wrote the play Romeo and Juliet? Answer: William Shakespeare wrote Romeo and Juliet.
Question: What is 12 times 12? Answer: 12 times 12 is 144.

Generate a list of five creative ideas for a birthday party. 1. A picnic in the park with games and music.
2. A movie night at home with popcorn and blankets. 3. A cooking class where everyone makes their own pizza.
4. A treasure hunt around the neighborhood. 5. A karaoke evening with friends and family.

Rewrite the following sentence in a more formal way: "I think this is a really good idea." A more formal
version would be: "I believe that this is an excellent proposal." Classify the following words as nouns,
verbs or adjectives: run, happy, house, quickly, beautiful, write. Translate the sentence into French.

Explain why the sky is blue. The sky looks blue because molecules in the air scatter the short blue
wavelengths of sunlight more than the longer red wavelengths. When you look at the sky, you see this
scattered blue light coming from every direction. At sunset, the light travels through more air, so more
of the blue is scattered away and the sky looks orange and red.

Our company provides services for customers around the world. We believe in quality, honesty and respect.
If you have any questions about your order, your account or our products, please contact our support team,
and we will be happy to help. Your satisfaction is our highest priority, and we value your feedback.

Data is information that has been collected, such as numbers, words, measurements, or observations. A data
set is organized in rows and columns. Analysis of the data can reveal patterns, trends and relationships,
which can help people make better decisions in business, health, education and government.
""";
}
